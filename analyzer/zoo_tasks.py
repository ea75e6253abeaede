"""The synthetic 32×32 source tasks the offline zoo trains on, generated from formulas (no download).

Each ``make_<task>(n, seed, *, size=IMAGE_SIZE) -> (images N×size×size×3 uint8, labels N int64)`` is seeded and
deterministic; :data:`SOURCE_TASKS` maps task names to them. Changing a generator means bumping
:data:`analyzer.zoo.ZOO_VERSION`, so cached candidates are rebuilt.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

IMAGE_SIZE = 32


# ---------------------------------------------------------------------------------------------- source tasks


def _rng(seed: int, *salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, *salt])


def _colourise(
    intensity: np.ndarray, rng: np.random.Generator, *, noise: float = 0.04, min_contrast: float = 0.35
) -> np.ndarray:
    """Map N×H×W intensities in [0, 1] to N×H×W×3 uint8 with a random foreground/background colour each.

    Colours vary so that a model cannot solve a task from colour alone; the contrast floor keeps every
    image legible.
    """
    n = intensity.shape[0]
    bg = rng.uniform(0.0, 1.0, size=(n, 1, 1, 3))
    fg = rng.uniform(0.0, 1.0, size=(n, 1, 1, 3))
    # Push foreground away from background where they are too similar (mean over channels).
    gap = (fg - bg).mean(axis=-1, keepdims=True)
    weak = np.abs(gap) < min_contrast
    direction = np.where(gap >= 0, 1.0, -1.0)
    fg = np.where(weak, np.clip(bg + direction * min_contrast * 1.5, 0.0, 1.0), fg)
    fg = np.where(weak & (np.abs((fg - bg).mean(-1, keepdims=True)) < min_contrast), 1.0 - bg, fg)
    image = bg + (fg - bg) * intensity[..., None]
    image = image + rng.normal(0.0, noise, size=image.shape)
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def _rasterise(points: np.ndarray, size: int, *, thickness: np.ndarray | None = None) -> np.ndarray:
    """Splat N×P×2 points in [0, 1]² onto N×size×size grids, then thicken and soften the strokes.

    Returns float intensities in [0, 1].
    """
    from scipy import ndimage

    n, p, _ = points.shape
    ij = np.clip((points * size).astype(np.int64), 0, size - 1)
    flat = np.arange(n)[:, None] * size * size + ij[..., 1] * size + ij[..., 0]
    grid = np.bincount(flat.ravel(), minlength=n * size * size).reshape(n, size, size)
    grid = (grid > 0).astype(np.float32)
    if thickness is not None:
        thick = ndimage.grey_dilation(grid, size=(1, 2, 2))
        grid = np.where(thickness[:, None, None], thick, grid)
    return np.clip(ndimage.gaussian_filter(grid, sigma=(0, 0.5, 0.5)) * 1.6, 0.0, 1.0)


def _bezier(control: np.ndarray, steps: int) -> np.ndarray:
    """Points on cubic Bézier curves: control ...×4×2 → ...×steps×2."""
    t = np.linspace(0.0, 1.0, steps)[:, None]
    basis = np.stack([(1 - t) ** 3, 3 * (1 - t) ** 2 * t, 3 * (1 - t) * t**2, t**3], axis=0)  # 4×steps×1
    return np.einsum("kti,...kd->...td", basis, control)


def _random_affine(
    points: np.ndarray, rng: np.random.Generator, *, rotate: float, scale: tuple[float, float]
) -> np.ndarray:
    """Rotate/scale/shift N×P×2 points about the image centre, per sample."""
    n = points.shape[0]
    angle = rng.uniform(-rotate, rotate, size=n)
    s = rng.uniform(*scale, size=n)
    shift = rng.uniform(-0.08, 0.08, size=(n, 1, 2))
    cos, sin = np.cos(angle) * s, np.sin(angle) * s
    matrix = np.stack([np.stack([cos, -sin], -1), np.stack([sin, cos], -1)], -2)  # N×2×2
    return np.einsum("nij,npj->npi", matrix, points - 0.5) + 0.5 + shift


def make_strokes(
    n: int, seed: int, *, n_classes: int = 10, size: int = IMAGE_SIZE
) -> tuple[np.ndarray, np.ndarray]:
    """Pen-stroke glyphs: class k is a fixed set of 2–3 cubic Bézier strokes; samples jitter them.

    Returns (images N×size×size×3 uint8, labels N int64 in 0..n_classes-1).
    """
    proto_rng = _rng(seed, 1, 0)  # the glyph prototypes depend on the seed only, not on n
    strokes_per_class = proto_rng.integers(2, 4, size=n_classes)
    prototypes = proto_rng.uniform(0.15, 0.85, size=(n_classes, 3, 4, 2))
    rng = _rng(seed, 1, 1)
    labels = rng.integers(0, n_classes, size=n)
    control = prototypes[labels] + rng.normal(0.0, 0.045, size=(n, 3, 4, 2))
    curves = _bezier(control, 48)  # N×3×48×2
    # Unused third strokes collapse onto the first stroke's start, which draws nothing new.
    keep = np.arange(3)[None, :] < strokes_per_class[labels][:, None]
    curves = np.where(keep[..., None, None], curves, curves[:, :1, :1, :])
    points = _random_affine(curves.reshape(n, -1, 2), rng, rotate=0.25, scale=(0.85, 1.1))
    intensity = _rasterise(points, size, thickness=rng.random(n) < 0.6)
    return _colourise(intensity, rng), labels.astype(np.int64)


def make_fractals(
    n: int, seed: int, *, n_classes: int = 10, size: int = IMAGE_SIZE, n_points: int = 600
) -> tuple[np.ndarray, np.ndarray]:
    """IFS fractals rendered with the chaos game; class k is one random contractive IFS (2–4 maps).

    Per sample the maps are perturbed slightly (FractalDB's intra-class variation), and the attractor is
    rescaled into the frame with a random margin and rotation.
    """
    proto_rng = _rng(seed, 2, 0)
    n_maps = 4
    maps = proto_rng.uniform(-1.0, 1.0, size=(n_classes, n_maps, 2, 3))
    # Make each map contractive: scale its linear part to a spectral norm in [0.35, 0.8].
    for k in range(n_classes):
        for m in range(n_maps):
            norm = np.linalg.norm(maps[k, m, :, :2], 2)
            maps[k, m, :, :2] *= proto_rng.uniform(0.35, 0.8) / max(float(norm), 1e-6)
    active = proto_rng.integers(2, n_maps + 1, size=n_classes)
    rng = _rng(seed, 2, 1)
    labels = rng.integers(0, n_classes, size=n)
    sample_maps = maps[labels] + rng.normal(0.0, 0.03, size=(n, n_maps, 2, 3))
    weights = np.abs(np.linalg.det(sample_maps[..., :2])) + 0.02
    weights = np.where(np.arange(n_maps)[None, :] < active[labels][:, None], weights, 0.0)
    cumulative = np.cumsum(weights / weights.sum(1, keepdims=True), axis=1)
    point = np.zeros((n, 2))
    burn_in = 20
    trace = np.empty((n, n_points, 2))
    choices = rng.random((n_points + burn_in, n))
    rows = np.arange(n)
    for step in range(n_points + burn_in):
        pick = np.minimum((choices[step][:, None] > cumulative).sum(1), n_maps - 1)
        chosen = sample_maps[rows, pick]  # N×2×3
        point = np.einsum("nij,nj->ni", chosen[:, :, :2], point) + chosen[:, :, 2]
        if step >= burn_in:
            trace[:, step - burn_in] = point
    low, high = trace.min(1, keepdims=True), trace.max(1, keepdims=True)
    extent = np.maximum((high - low).max(-1, keepdims=True), 1e-6)
    unit = (trace - low) / extent * 0.8 + 0.1
    points = _random_affine(unit, rng, rotate=np.pi, scale=(0.8, 1.0))
    return _colourise(_rasterise(points, size), rng), labels.astype(np.int64)


SHAPE_NAMES = ("disc", "ring", "square", "hollow_square", "triangle", "cross", "ellipse", "diamond")


def make_shapes(n: int, seed: int, *, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """One geometric shape per image (classes :data:`SHAPE_NAMES`) at a random place, size and angle."""
    rng = _rng(seed, 3, 1)
    labels = rng.integers(0, len(SHAPE_NAMES), size=n)
    centre = rng.uniform(0.3, 0.7, size=(n, 2, 1, 1))
    radius = rng.uniform(0.18, 0.32, size=(n, 1, 1))
    angle = rng.uniform(0.0, 2 * np.pi, size=(n, 1, 1))
    grid = (np.arange(size) + 0.5) / size
    x = (grid[None, None, :] - centre[:, 0]) / radius
    y = (grid[None, :, None] - centre[:, 1]) / radius
    u = np.cos(angle) * x + np.sin(angle) * y
    v = -np.sin(angle) * x + np.cos(angle) * y
    r = np.sqrt(u**2 + v**2)
    box = np.maximum(np.abs(u), np.abs(v))
    masks = np.stack(
        [
            r < 1.0,
            (r > 0.6) & (r < 1.0),
            box < 0.8,
            (box > 0.5) & (box < 0.8),
            (v > -0.6) & (v < 0.9 - 1.7 * np.abs(u)),
            ((np.abs(u) < 0.25) & (np.abs(v) < 0.95)) | ((np.abs(v) < 0.25) & (np.abs(u) < 0.95)),
            u**2 + (v / 0.45) ** 2 < 1.0,
            np.abs(u) + np.abs(v) < 0.95,
        ],
        axis=1,
    )
    intensity = masks[np.arange(n), labels].astype(np.float32)
    from scipy import ndimage

    intensity = ndimage.gaussian_filter(intensity, sigma=(0, 0.5, 0.5))  # anti-aliased edges
    return _colourise(intensity, rng, noise=0.06), labels.astype(np.int64)


def make_textures(n: int, seed: int, *, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """Sinusoidal gratings: 8 classes = 4 orientations × 2 spatial frequencies, random phase and colour."""
    rng = _rng(seed, 4, 1)
    labels = rng.integers(0, 8, size=n)
    theta = (labels % 4) * (np.pi / 4) + rng.normal(0.0, 0.08, size=n)
    cycles = np.where(labels < 4, 3.0, 7.0) * rng.uniform(0.85, 1.15, size=n)
    phase = rng.uniform(0.0, 2 * np.pi, size=n)
    grid = (np.arange(size) + 0.5) / size
    x, y = grid[None, None, :], grid[None, :, None]
    wave = (np.cos(theta)[:, None, None] * x + np.sin(theta)[:, None, None] * y) * cycles[
        :, None, None
    ] * 2 * np.pi + phase[:, None, None]
    intensity = 0.5 + 0.5 * np.sin(wave)
    return _colourise(intensity, rng, noise=0.08), labels.astype(np.int64)


def make_random_labels(n: int, seed: int, *, size: int = IMAGE_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """The stroke images with labels drawn uniformly at random: the features can only memorise noise."""
    images, _ = make_strokes(n, seed, size=size)
    return images, _rng(seed, 5, 1).integers(0, 10, size=n).astype(np.int64)


#: Source-task name → generator ``(n, seed) -> (images N×32×32×3 uint8, labels N int64)``.
SOURCE_TASKS: dict[str, Callable[[int, int], tuple[np.ndarray, np.ndarray]]] = {
    "strokes": make_strokes,
    "fractals": make_fractals,
    "shapes": make_shapes,
    "textures": make_textures,
    "random_labels": make_random_labels,
}
SOURCE_CLASSES = {
    "strokes": 10,
    "fractals": 10,
    "shapes": len(SHAPE_NAMES),
    "textures": 8,
    "random_labels": 10,
}
