"""The offline candidate pool: small timm backbones pretrained on formula-driven source tasks.

Model hubs are unreachable offline, so the demo builds its own pool of genuinely different backbones:
three timm families (a narrow ResNet, a MobileNetV3, a tiny ViT, plus a small ConvNeXt), each trained for a
short fixed budget on a synthetic 32×32 source task that this module generates from formulas (no download):

- ``strokes``   — 10 "glyph" classes, each a fixed set of cubic Bézier pen strokes, jittered per sample.
- ``fractals``  — 10 iterated-function-system fractals (as in FractalDB), parameters perturbed per sample.
- ``shapes``    — 8 geometric shapes (disc, ring, squares, triangle, cross, ellipse, diamond).
- ``textures``  — 8 sinusoidal gratings (4 orientations × 2 frequencies).
- ``random``    — the stroke images with labels drawn at random: a control that can only memorise.
- randomly initialised baselines (no training at all).

Everything is seeded (data, initialisation, batch order) and runs with a fixed number of CPU threads and
``torch.use_deterministic_algorithms``, so the same seed and budget give byte-identical weights on one
machine. Each candidate is saved as ``<cache>/zoo/<name>.safetensors`` (the full state dict, source head
included) with a sidecar ``<name>.json`` that :mod:`analyzer.sources` reads for the spec
``timm:ARCH@<cache>/zoo/<name>.safetensors``.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer.errors import AnalyzerError
from analyzer.zoo_tasks import IMAGE_SIZE, SOURCE_CLASSES, SOURCE_TASKS

if TYPE_CHECKING:  # torch is imported where it is used: listing the zoo must stay fast
    import torch

#: Bump when a generator or the training loop changes, so cached candidates are rebuilt.
ZOO_VERSION = 1


# ------------------------------------------------------------------------------------------------- the pool

#: Small variants of three timm families; kwargs go straight to ``timm.create_model`` (JSON-serialisable).
#: Entry: family -> (timm name, kwargs, learning-rate multiplier). MobileNetV3 needs a larger step to learn
#: anything in a few hundred steps (measured: 27 % vs 61 % held-out on strokes at 1× vs 2.5×).
ARCHITECTURES: dict[str, tuple[str, dict[str, Any], float]] = {
    "resnet": ("resnet18", {"layers": [1, 1, 1, 1], "channels": [16, 32, 64, 128], "stem_width": 16}, 1.0),
    "mobilenet": ("mobilenetv3_small_050", {}, 2.5),
    "convnext": ("convnext_atto", {"depths": [1, 1, 2, 1], "dims": [24, 48, 96, 192]}, 1.0),
    "vit": (
        "vit_tiny_patch16_224",
        {"img_size": IMAGE_SIZE, "patch_size": 4, "depth": 3, "embed_dim": 64, "num_heads": 2},
        1.0,
    ),
}


@dataclass(frozen=True)
class Budget:
    """How long each candidate trains: ``steps`` optimiser steps of ``batch_size`` images.

    ``n_train`` / ``n_test`` source images are generated per task; the held-out ``n_test`` give
    ``source_accuracy``. ``threads`` is fixed (not the machine's core count) so weights are reproducible.
    """

    name: str
    steps: int
    batch_size: int = 64
    lr: float = 2e-3
    n_train: int = 3000
    n_test: int = 600
    threads: int = 2


BUDGETS = {
    "small": Budget("small", steps=150, n_train=2000, n_test=400),
    "full": Budget("full", steps=400),
}


@dataclass(frozen=True)
class CandidateConfig:
    """One pool member: ``family`` (key of :data:`ARCHITECTURES`) trained on ``task`` (None = random init)."""

    name: str
    family: str
    task: str | None
    seed: int = 0

    @property
    def arch(self) -> str:
        return ARCHITECTURES[self.family][0]

    @property
    def lr_scale(self) -> float:
        return ARCHITECTURES[self.family][2]

    def model_kwargs(self) -> dict[str, Any]:
        classes = SOURCE_CLASSES[self.task] if self.task else 10
        return {**ARCHITECTURES[self.family][1], "num_classes": classes}


#: The full pool: three families × four formula tasks, a random-label control and two untrained baselines.
FULL_POOL: tuple[CandidateConfig, ...] = (
    CandidateConfig("resnet-strokes", "resnet", "strokes"),
    CandidateConfig("resnet-fractals", "resnet", "fractals"),
    CandidateConfig("resnet-shapes", "resnet", "shapes"),
    CandidateConfig("resnet-textures", "resnet", "textures"),
    CandidateConfig("resnet-randlabels", "resnet", "random_labels"),
    CandidateConfig("mobilenet-strokes", "mobilenet", "strokes"),
    CandidateConfig("mobilenet-fractals", "mobilenet", "fractals"),
    CandidateConfig("convnext-strokes", "convnext", "strokes"),
    CandidateConfig("vit-strokes", "vit", "strokes"),
    CandidateConfig("vit-textures", "vit", "textures"),
    CandidateConfig("resnet-init", "resnet", None),
    CandidateConfig("convnext-init", "convnext", None),
)
SMALL_POOL: tuple[CandidateConfig, ...] = tuple(
    c
    for c in FULL_POOL
    if c.name in {"resnet-strokes", "mobilenet-fractals", "resnet-randlabels", "resnet-init"}
)
POOLS = {"small": SMALL_POOL, "full": FULL_POOL}


@dataclass
class BuiltCandidate:
    """A candidate on disk: its spec for :func:`analyzer.sources.load_backbone` and its sidecar."""

    name: str
    arch: str
    weights_path: Path
    sidecar: dict[str, Any] = field(default_factory=dict)
    cached: bool = False

    @property
    def spec(self) -> str:
        return f"timm:{self.arch}@{self.weights_path}"


def zoo_dir(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``<cache>/zoo``, created if missing."""
    from analyzer.paths import CacheLayout, resolve_cache_dir

    path = CacheLayout(resolve_cache_dir(cache_dir)).zoo
    path.mkdir(parents=True, exist_ok=True)
    return path


def _config_key(config: CandidateConfig, budget: Budget) -> str:
    """A hash of everything that determines the weights; a sidecar with the same key is a cache hit."""
    blob = json.dumps(
        {
            "version": ZOO_VERSION,
            "candidate": asdict(config),
            "kwargs": config.model_kwargs(),
            "budget": asdict(budget),
            "lr_scale": config.lr_scale,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


class _Deterministic:
    """Context: fixed torch threads and deterministic algorithms, restored on exit."""

    def __init__(self, threads: int) -> None:
        self.threads = threads

    def __enter__(self) -> None:
        import torch

        self._threads = torch.get_num_threads()
        self._deterministic = torch.are_deterministic_algorithms_enabled()
        torch.set_num_threads(self.threads)
        torch.use_deterministic_algorithms(True, warn_only=True)

    def __exit__(self, *exc: object) -> None:
        import torch

        torch.set_num_threads(self._threads)
        torch.use_deterministic_algorithms(self._deterministic)


def _to_tensor(images: np.ndarray, mean: np.ndarray, std: np.ndarray) -> torch.Tensor:
    import torch

    x = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    return (x - torch.from_numpy(mean).view(1, 3, 1, 1)) / torch.from_numpy(std).view(1, 3, 1, 1)


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 256) -> float:
    import torch

    model.eval()
    with torch.no_grad():
        predictions = torch.cat([model(x[i : i + batch]).argmax(1) for i in range(0, len(x), batch)])
    return float((predictions == y).float().mean())


def train_candidate(
    config: CandidateConfig, budget: Budget, *, progress: Callable[[int], None] | None = None
) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Create ``config``'s model and train it on its source task for ``budget``.

    Returns ``(model in eval mode, info dict)`` with ``source_accuracy`` (held-out accuracy on the source
    task in [0, 1], or None for a random-init baseline), ``mean``/``std`` (per-channel input normalisation
    in [0, 1] pixel units) and ``train_seconds``.
    """
    import timm
    import torch

    if config.family not in ARCHITECTURES:
        raise AnalyzerError(
            f"unknown zoo family {config.family!r}", f"use one of {', '.join(sorted(ARCHITECTURES))}"
        )
    if config.task is not None and config.task not in SOURCE_TASKS:
        raise AnalyzerError(f"unknown source task {config.task!r}", f"use one of {', '.join(SOURCE_TASKS)}")
    start = time.perf_counter()
    with _Deterministic(budget.threads):
        torch.manual_seed(config.seed)
        model = timm.create_model(config.arch, pretrained=False, **config.model_kwargs())
        info: dict[str, Any] = {"source_accuracy": None}
        if config.task is None:
            # Untrained baseline: the normalisation is the generic mid-grey one (nothing to estimate it from).
            mean, std = np.full(3, 0.5), np.full(3, 0.25)
        else:
            generate = SOURCE_TASKS[config.task]
            images, labels = generate(budget.n_train + budget.n_test, config.seed)
            train_images = images[: budget.n_train]
            # Normalise with the source data's own statistics, as real pretrained models do.
            pixels = train_images.reshape(-1, 3).astype(np.float64) / 255.0
            mean, std = pixels.mean(0), np.maximum(pixels.std(0), 1e-3)
            x = _to_tensor(images, mean.astype(np.float32), std.astype(np.float32))
            y = torch.from_numpy(labels)
            x_train, y_train = x[: budget.n_train], y[: budget.n_train]
            lr = budget.lr * config.lr_scale
            optimiser = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.05)
            schedule = torch.optim.lr_scheduler.OneCycleLR(
                optimiser, max_lr=lr, total_steps=max(budget.steps, 1), pct_start=0.15
            )
            generator = torch.Generator().manual_seed(config.seed)
            order = torch.randperm(budget.n_train, generator=generator)
            position = 0
            model.train()
            for _ in range(budget.steps):
                if position + budget.batch_size > budget.n_train:
                    order, position = torch.randperm(budget.n_train, generator=generator), 0
                batch = order[position : position + budget.batch_size]
                position += budget.batch_size
                # Flips are label-preserving for none of the tasks' classes in general, so no augmentation.
                loss = torch.nn.functional.cross_entropy(model(x_train[batch]), y_train[batch])
                optimiser.zero_grad(set_to_none=True)
                loss.backward()
                optimiser.step()
                schedule.step()
                if progress:
                    progress(1)
            info["source_accuracy"] = _accuracy(model, x[budget.n_train :], y[budget.n_train :])
        model.eval()
    info["mean"] = [round(float(v), 4) for v in mean]
    info["std"] = [round(float(v), 4) for v in std]
    info["train_seconds"] = round(time.perf_counter() - start, 2)
    return model, info


def _read_sidecar(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def build_zoo(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    budget: str | Budget = "full",
    candidates: Sequence[CandidateConfig] | None = None,
    only: Iterable[str] | None = None,
    progress: bool = True,
) -> list[BuiltCandidate]:
    """Build (or reuse) the candidate pool under ``<cache>/zoo`` and return it in pool order.

    Args:
        cache_dir: the cache root (see :func:`analyzer.paths.resolve_cache_dir`).
        budget: ``"small"`` / ``"full"`` (which also picks the pool) or a :class:`Budget` (then ``candidates``
            or the full pool is used).
        candidates: override the pool.
        only: restrict to these candidate names.
        progress: show a tqdm bar over all training steps.

    A candidate whose sidecar carries the same ``config_key`` (architecture, task, seed, budget, zoo version)
    and whose weights file exists is not retrained.
    """
    from safetensors.torch import save_file
    from tqdm.auto import tqdm

    if isinstance(budget, str):
        if budget not in BUDGETS:
            raise AnalyzerError(f"unknown zoo budget {budget!r}", f"use one of {', '.join(BUDGETS)}")
        pool = tuple(candidates) if candidates is not None else POOLS[budget]
        budget_obj = BUDGETS[budget]
    else:
        pool = tuple(candidates) if candidates is not None else FULL_POOL
        budget_obj = budget
    if only is not None:
        wanted = list(only)
        unknown = sorted(set(wanted) - {c.name for c in pool})
        if unknown:
            raise AnalyzerError(
                f"no zoo candidate named {', '.join(unknown)}", f"pick from {', '.join(c.name for c in pool)}"
            )
        pool = tuple(c for c in pool if c.name in wanted)
    root = zoo_dir(cache_dir)
    built: list[BuiltCandidate] = []
    todo: list[CandidateConfig] = []
    for config in pool:
        sidecar = _read_sidecar(root / f"{config.name}.json")
        weights = root / f"{config.name}.safetensors"
        if sidecar and sidecar.get("config_key") == _config_key(config, budget_obj) and weights.exists():
            built.append(BuiltCandidate(config.name, config.arch, weights, sidecar, cached=True))
        else:
            todo.append(config)
    total_steps = sum(budget_obj.steps for c in todo if c.task is not None)
    bar = tqdm(
        total=total_steps, desc="zoo build", unit="step", disable=not progress or not todo, mininterval=1.0
    )
    try:
        for config in todo:
            bar.set_postfix_str(config.name)
            model, info = train_candidate(config, budget_obj, progress=bar.update)
            weights = root / f"{config.name}.safetensors"
            state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
            tmp = weights.with_name(weights.name + ".tmp")
            save_file(state, str(tmp), metadata={"format": "pt"})
            tmp.replace(weights)
            sidecar = {
                "name": config.name,
                "arch": config.arch,
                "family": config.family,
                "model_kwargs": config.model_kwargs(),
                "input_size": [3, IMAGE_SIZE, IMAGE_SIZE],
                "mean": info["mean"],
                "std": info["std"],
                "interpolation": "bilinear",
                "crop_pct": 1.0,
                "source_task": config.task or "none (random init)",
                "source_classes": SOURCE_CLASSES[config.task] if config.task else None,
                "source_accuracy": info["source_accuracy"],
                "seed": config.seed,
                "budget": asdict(budget_obj) if config.task else {**asdict(budget_obj), "steps": 0},
                "train_seconds": info["train_seconds"],
                "weights_sha256": hashlib.sha256(weights.read_bytes()).hexdigest(),
                "zoo_version": ZOO_VERSION,
                "config_key": _config_key(config, budget_obj),
            }
            tmp_json = root / f"{config.name}.json.tmp"
            tmp_json.write_text(json.dumps(sidecar, indent=2) + "\n")
            tmp_json.replace(root / f"{config.name}.json")
            built.append(BuiltCandidate(config.name, config.arch, weights, sidecar, cached=False))
    finally:
        bar.close()
    order = {c.name: i for i, c in enumerate(pool)}
    return sorted(built, key=lambda b: order[b.name])


def list_zoo(cache_dir: str | os.PathLike[str] | None = None) -> list[BuiltCandidate]:
    """Every built candidate under ``<cache>/zoo`` (sidecar and weights present), sorted by name."""
    root = zoo_dir(cache_dir)
    found = []
    for sidecar_path in sorted(root.glob("*.json")):
        sidecar = _read_sidecar(sidecar_path)
        weights = sidecar_path.with_suffix(".safetensors")
        if sidecar and "arch" in sidecar and weights.exists():
            found.append(BuiltCandidate(sidecar_path.stem, sidecar["arch"], weights, sidecar, cached=True))
    return found
