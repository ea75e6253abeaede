"""PED: Potential Energy Decline.

Card
----
- Paper: Li et al., "Exploring Model Transferability through the Lens of Potential Energy", ICCV 2023.
  Reference code: lixiaotong97/PED ``metrics.py::PED_Score`` with its evaluation script's settings
  (read, not copied): ``nsigma = 0.6``, ``time_step = 0.1``, ``exit_ratio = 0.5``, ``constant = 1``,
  ``eps = 1e-3``, at most 6 steps.
- Formula: classes are balls (centre μ_c, radius r_c = sqrt(Σ_d var_c,d) in standardised units) that repel
  each other where they overlap, simulating the feature dynamics of fine-tuning. One step: for every pair
  a ≠ b with δ = μ_a - μ_b, d = ‖δ‖, overlap o = max(nsigma·(r_a + r_b) - d, 0), the move
  ``min(½·time_step²·constant·o, o)`` pushes a along +δ/d and b along -δ/d; every sample moves with its class.
  Steps repeat while the total movement stays above ``exit_ratio`` times the first step's; the score is the
  ``base`` metric (``sfda`` default, ``logme`` or ``nleep``) on the moved features.
- Direction: higher = more transferable (the base metric's orientation). No sign flip.
- Inputs: ``features`` N×D, class ``labels`` (N,); optional ``reference_features`` M×D give the standardising
  statistics ``m = mean``, ``s = max(std_pop, eps)`` per dimension (the paper uses ImageNet validation features).
  **Fallback (documented choice, not part of the reference, which cannot run without them):** when
  ``reference_features`` is None, the target features' own mean and standard deviation are used.
- Failure modes: NaN/inf, shape mismatch, < 2 classes -> ValueError (also from the base metric); a
  ``reference_features`` with a different D -> ValueError. Two classes with identical means (d = 0) give 0/0
  in the reference: such pairs are skipped. No overlap at all (first movement 0): the score is the base
  metric on the unmoved features. Constant columns: s is clamped at eps, so no division by zero.
- Complexity: the dynamics only move class means, and the class radii are invariant under a per-class shift,
  so each step costs O(C²·D) (pairwise distances) on C×D means and the radii are computed once (O(N·D)).
  Peak extra memory O(C² + C·D) for the dynamics — never the reference's C×C×D array. With the default
  ``base="sfda"`` the moved features are never formed (SFDA adds the C×D displacement to each float64 row
  chunk it reads), so the whole score needs O(C² + C·D + D² + N·C) plus 2048-row chunks; the ``logme`` and
  ``nleep`` bases get one N×D float64 copy of the moved features. Total time: O(N·D + steps·C²·D) + the
  base metric's cost (for sfda: two N·D² products).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse
from scipy.spatial.distance import cdist

from metrics._registry import register_metric
from metrics._validation import check_features, encode_labels
from metrics.sfda import sfda_score

#: Base metrics PED can wrap, as in the reference's ``type`` argument.
BASES = ("sfda", "logme", "nleep")

_EPS = 1e-3  # lower clamp on the standardising standard deviation (reference's eps)
_CONSTANT = 1.0  # the reference's force constant
_CHUNK_ROWS = 2048  # rows per float64 chunk of the statistics passes


def standardising_stats(reference: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-dimension ``(mean, max(std_pop, eps))`` of ``reference`` (M×D), float64 (D,) each.

    Two passes over float64 row chunks, so the target features can serve as their own reference without a
    float64 copy of all of them.
    """
    n, d = reference.shape
    total = np.zeros(d)
    for start in range(0, n, _CHUNK_ROWS):
        total += reference[start : start + _CHUNK_ROWS].sum(axis=0, dtype=np.float64)
    mean = total / n
    squares = np.zeros(d)
    for start in range(0, n, _CHUNK_ROWS):
        deviation = reference[start : start + _CHUNK_ROWS].astype(np.float64) - mean
        squares += np.einsum("nd,nd->d", deviation, deviation)
    return mean, np.maximum(np.sqrt(squares / n), _EPS)


def class_stats(
    features: np.ndarray, y: np.ndarray, n_classes: int, mean: np.ndarray, std: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Class means (C×D) and radii (C,) of the standardised features ``(X - mean)/std``, float64.

    The radius is ``sqrt(Σ_d var_pop,c,d) = sqrt(mean_i ‖xs_i - μ_c‖²)`` over the class's samples. Two passes
    over float64 row chunks (sums, then squared deviations from the class mean), whatever the class sizes.
    """
    n, d = features.shape
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    sums = np.zeros((n_classes, d))
    for start in range(0, n, _CHUNK_ROWS):
        codes = y[start : start + _CHUNK_ROWS]
        xs = (features[start : start + _CHUNK_ROWS].astype(np.float64) - mean) / std
        sums += (
            scipy.sparse.csr_matrix(
                (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_classes, len(codes))
            )
            @ xs
        )
    means = sums / counts[:, None]
    squares = np.zeros(n_classes)
    for start in range(0, n, _CHUNK_ROWS):
        codes = y[start : start + _CHUNK_ROWS]
        deviation = (features[start : start + _CHUNK_ROWS].astype(np.float64) - mean) / std - means[codes]
        squares += np.bincount(
            codes, weights=np.einsum("nd,nd->n", deviation, deviation), minlength=n_classes
        )
    return means, np.sqrt(squares / counts)


def ped_step(
    means: np.ndarray, radii: np.ndarray, *, nsigma: float, time_step: float
) -> tuple[np.ndarray, float]:
    """One step of the class dynamics in standardised units.

    Args:
        means: C×D class means (standardised units).
        radii: (C,) class radii.

    Returns:
        ``(shift, change)``: the C×D displacement Δ of every class and ``Σ |Δ|`` (the step's movement).

    Pair sums are vectorised through the C×C distance matrix: with ``w_ab = move_ab / d_ab`` (0 for a = b and
    d = 0), ``Δ_a = Σ_b w_ab·(μ_a - μ_b) = (Σ_b w_ab)·μ_a - (W·M)_a``; since w is symmetric, the same pair's
    push on b, ``-w_ab·(μ_a - μ_b)``, is b's own term in that sum. Memory O(C² + C·D).
    """
    dist = cdist(means, means)  # exact Euclidean, C×C
    overlap = np.maximum(nsigma * (radii[:, None] + radii[None, :]) - dist, 0.0)
    move = np.minimum(0.5 * time_step**2 * _CONSTANT * overlap, overlap)
    with np.errstate(divide="ignore", invalid="ignore"):
        weight = np.where(dist > 0, move / dist, 0.0)  # d = 0 (identical means, or a = b): skipped
    np.fill_diagonal(weight, 0.0)
    shift = weight.sum(axis=1)[:, None] * means - weight @ means
    return shift, float(np.abs(shift).sum())


def class_displacement(
    features: np.ndarray,
    y: np.ndarray,
    n_classes: int,
    mean: np.ndarray,
    std: np.ndarray,
    *,
    nsigma: float = 0.6,
    time_step: float = 0.1,
    exit_ratio: float = 0.5,
    max_steps: int = 6,
) -> tuple[np.ndarray, int]:
    """Run the PED dynamics; return each class's total displacement in feature units (C×D float64) and the
    number of steps accepted. The moved features are ``X' = X + displacement_y``.

    The first step is always accepted; later steps while ``change / change₀ > exit_ratio``; at most
    ``max_steps`` steps are computed.
    """
    means, radii = class_stats(features, y, n_classes, mean, std)
    total = np.zeros_like(means)
    first_change = 0.0
    accepted = 0
    for step in range(max_steps):
        shift, change = ped_step(means, radii, nsigma=nsigma, time_step=time_step)
        if step == 0:
            first_change = change
            if change == 0.0:
                break  # no overlapping classes: nothing moves, the score is the base metric on X
        elif change / first_change <= exit_ratio:
            break
        means = means + shift
        total += shift
        accepted += 1
    return total * std, accepted


def moved_features(
    features: np.ndarray, y: np.ndarray, n_classes: int, mean: np.ndarray, std: np.ndarray, **dynamics: Any
) -> tuple[np.ndarray, int]:
    """The moved features ``X + displacement_y`` (N×D float64, a new array) and the steps accepted; keyword
    arguments as :func:`class_displacement`."""
    displacement, accepted = class_displacement(features, y, n_classes, mean, std, **dynamics)
    moved = features.astype(np.float64)  # a copy: the caller's array is never touched
    moved += displacement[y]
    return moved, accepted


@register_metric(
    "ped",
    direction="higher = more transferable (the base metric's orientation). No sign flip.",
    needs="features N×D, class labels (N,); optional reference_features M×D give the standardising statistics m = mean, s = max(std_pop, eps) per dimension (the paper uses ImageNet validation features). Fallback (documented choice, not part of the reference, which cannot run without them): when reference_features is None, the target features' own mean and standard deviation are used.",
    summary="Potential Energy Decline (Li et al., ICCV 2023) around a base metric",
    properties={"sample_order", "label_renaming", "unmodified"},
)
def ped(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    reference_features: np.ndarray | None = None,
    base: str = "sfda",
    nsigma: float = 0.6,
    time_step: float = 0.1,
    exit_ratio: float = 0.5,
    max_steps: int = 6,
    random_state: int = 0,
) -> float:
    """PED: the ``base`` metric on features moved by the potential-energy dynamics (see :mod:`metrics.ped`).

    Args:
        features: N×D float array; not modified.
        labels: (N,) class labels of any hashable kind.
        reference_features: M×D features of a reference set for the standardising statistics; when None,
            the target features' own statistics are used (documented fallback, see the module card).
        base: ``"sfda"`` (default), ``"logme"`` or ``"nleep"``.
        nsigma, time_step, exit_ratio, max_steps: the reference evaluation's settings by default.
        random_state: seed of ``nleep``'s mixture fit, used only when ``base="nleep"``.

    Returns:
        The base metric's value on the moved features; higher = more transferable.
    """
    if base not in BASES:
        raise ValueError(f"ped: unknown base {base!r}; choose one of {', '.join(BASES)}")
    if max_steps < 1:
        raise ValueError(f"ped: max_steps must be at least 1, got {max_steps}")
    x = check_features(features)
    encoded = encode_labels(labels, x.shape[0])
    if reference_features is None:
        mean, std = standardising_stats(x)
    else:
        ref = check_features(reference_features, name="reference_features", min_samples=1)
        if ref.shape[1] != x.shape[1]:
            raise ValueError(
                f"ped: reference_features has {ref.shape[1]} dimensions but features has {x.shape[1]}; "
                "extract both with the same backbone and layer"
            )
        mean, std = standardising_stats(ref)
    displacement, _ = class_displacement(
        x,
        encoded.y,
        encoded.n_classes,
        mean,
        std,
        nsigma=nsigma,
        time_step=time_step,
        exit_ratio=exit_ratio,
        max_steps=max_steps,
    )
    if base == "sfda":  # the moved features are never formed: SFDA shifts its row chunks by the displacement
        return sfda_score(x, encoded.y, class_offsets=displacement)
    import metrics  # late import: metrics/__init__ imports this module while registering

    moved = x.astype(np.float64)
    moved += displacement[encoded.y]
    params: dict[str, Any] = {"random_state": random_state} if base == "nleep" else {}
    return metrics.compute(base, moved, encoded.y, **params)
