"""The types every model source produces, and the registry that maps a spec prefix to its adapter.

A source adapter is one module ``analyzer/sources/<name>_source.py`` that decorates its loader with
:func:`register_source`; :mod:`analyzer.sources` discovers such modules by name, so adding a source touches
nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from PIL import Image

from analyzer.errors import BackboneError

#: Interpolation names a :class:`Preprocess` accepts, and PIL's integer resample codes for each (the
#: Hugging Face processors store ``resample`` as such an integer).
INTERPOLATIONS: dict[str, int] = {
    "nearest": 0,
    "lanczos": 1,
    "bilinear": 2,
    "bicubic": 3,
    "box": 4,
    "hamming": 5,
}
CROP_MODES = ("center", "squash")


def _as_triple(value: Any, what: str, origin: str) -> tuple[float, float, float]:
    """One float per RGB channel; a single number is broadcast (``std=0.5`` means 0.5 for each channel)."""
    if isinstance(value, int | float):
        value = [value] * 3
    try:
        values = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        values = ()
    if len(values) == 1:  # [0.5] means 0.5 for each channel, as 0.5 does
        values = values * 3
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise BackboneError(
            f"{what} from {origin} is {value!r}; it must be 3 finite numbers (one per RGB channel)",
            f"give {what} as three numbers, e.g. 0.485,0.456,0.406",
        )
    return values  # three floats: the length was checked above


def _as_input_size(value: Any, origin: str) -> tuple[int, int, int]:
    """``(3, H, W)`` from an int (square), ``(H, W)`` or ``(C, H, W)``; only RGB (C = 3) inputs are supported."""
    if isinstance(value, int | float):
        value = (3, int(value), int(value))
    try:
        dims = tuple(int(v) for v in value)
    except (TypeError, ValueError):
        dims = ()
    if len(dims) == 2:
        dims = (3, *dims)
    if len(dims) != 3 or dims[0] != 3 or dims[1] < 1 or dims[2] < 1:
        raise BackboneError(
            f"input size from {origin} is {value!r}; it must be an image size S, (H, W) or (3, H, W)",
            "give the input size as one positive number (square) or H,W",
        )
    return dims  # (3, H, W): the length was checked above


def _as_interpolation(value: Any, origin: str) -> str:
    if isinstance(value, int) and value in INTERPOLATIONS.values():
        return next(name for name, code in INTERPOLATIONS.items() if code == value)
    name = str(value).lower().rsplit(".", 1)[-1]  # also "InterpolationMode.BILINEAR"
    if name not in INTERPOLATIONS:
        raise BackboneError(
            f"interpolation {value!r} from {origin} is not known",
            f"use one of {', '.join(INTERPOLATIONS)}",
        )
    return name


#: Key names accepted in a data config or sidecar, each mapped to the :class:`Preprocess` field it sets.
#: The first name is timm's; the others are spellings found in real sidecars and processors.
CONFIG_ALIASES: dict[str, tuple[str, ...]] = {
    "input_size": ("input_size", "image_size", "img_size", "resolution", "size"),
    "mean": ("mean", "image_mean", "norm_mean", "pixel_mean"),
    "std": ("std", "image_std", "norm_std", "pixel_std"),
    "interpolation": ("interpolation", "resample", "interp"),
    "crop_pct": ("crop_pct", "crop_ratio"),
    "crop_mode": ("crop_mode",),
}


def config_value(config: Mapping[str, Any], field_name: str) -> Any:
    """The value of a :class:`Preprocess` field in ``config`` under any accepted key name, or None."""
    for key in CONFIG_ALIASES[field_name]:
        if config.get(key) is not None:
            return config[key]
    return None


@dataclass(frozen=True)
class Preprocess:
    """How an image becomes a model input: the eval transform of the model's own data config.

    ``input_size`` is ``(3, H, W)`` in pixels; ``mean``/``std`` are per-channel values for inputs scaled to
    [0, 1] (``(x - mean) / std``); ``crop_pct`` is the fraction of the resized image the centre crop keeps
    (timm's convention: resize to ``floor(size / crop_pct)``, then crop ``size``); ``crop_mode`` is ``center``
    (resize the shorter side, keeping aspect) or ``squash`` (resize both sides, ignoring aspect).
    """

    input_size: tuple[int, int, int]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    crop_mode: str = "center"

    def __post_init__(self) -> None:
        origin = "the preprocessing config"
        object.__setattr__(self, "input_size", _as_input_size(self.input_size, origin))
        object.__setattr__(self, "mean", _as_triple(self.mean, "mean", origin))
        object.__setattr__(self, "std", _as_triple(self.std, "std", origin))
        object.__setattr__(self, "interpolation", _as_interpolation(self.interpolation, origin))
        if any(s <= 0 for s in self.std):
            raise BackboneError(f"std {self.std} has a non-positive entry", "give std values greater than 0")
        crop = float(self.crop_pct)
        if not (0.0 < crop <= 1.0):
            raise BackboneError(
                f"crop_pct {self.crop_pct!r} is outside (0, 1]", "give crop_pct as a fraction, e.g. 0.875"
            )
        object.__setattr__(self, "crop_pct", crop)
        if self.crop_mode not in CROP_MODES:
            raise BackboneError(f"crop_mode {self.crop_mode!r} is not supported", f"use one of {CROP_MODES}")

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], *, origin: str, overrides: Mapping[str, Any] | None = None
    ) -> Preprocess:
        """Build from timm's data-config keys (or their aliases in :data:`CONFIG_ALIASES`).

        ``overrides`` (``input_size``/``mean``/``std``, None entries ignored) win over ``config``. Missing
        ``input_size``, ``mean`` or ``std`` raise a :class:`BackboneError` naming them; ``interpolation``,
        ``crop_pct`` and ``crop_mode`` default to bilinear, 1.0 and center.
        """
        values = {name: config_value(config, name) for name in CONFIG_ALIASES}
        origins = dict.fromkeys(CONFIG_ALIASES, origin)
        flags = {"input_size": "--image-size", "mean": "--mean", "std": "--std"}
        for name, value in (overrides or {}).items():
            if value is not None:
                values[name] = value
                origins[name] = f"the option {flags.get(name, name)}"  # a bad value names where it came from
        missing = [name for name in ("input_size", "mean", "std") if values[name] is None]
        if missing:
            raise BackboneError(
                f"{origin} does not say the model's {', '.join(missing)}",
                "add them to the sidecar JSON beside the weights (timm data-config keys input_size, mean, std, "
                "interpolation, crop_pct); the `extract` command also takes --image-size/--mean/--std",
            )
        return cls(
            input_size=_as_input_size(values["input_size"], origins["input_size"]),
            mean=_as_triple(values["mean"], "mean", origins["mean"]),
            std=_as_triple(values["std"], "std", origins["std"]),
            interpolation=_as_interpolation(values["interpolation"] or "bilinear", origin),
            crop_pct=float(values["crop_pct"]) if values["crop_pct"] is not None else 1.0,
            crop_mode=str(values["crop_mode"] or "center"),
        )

    def with_overrides(
        self,
        image_size: int | Sequence[int] | None = None,
        mean: float | Sequence[float] | None = None,
        std: float | Sequence[float] | None = None,
    ) -> Preprocess:
        """A copy with the user's overrides applied (they win over the model's own config)."""
        changes: dict[str, Any] = {}
        if image_size is not None:
            changes["input_size"] = _as_input_size(image_size, "the image-size override")
        if mean is not None:
            changes["mean"] = _as_triple(mean, "mean", "the mean override")
        if std is not None:
            changes["std"] = _as_triple(std, "std", "the std override")
        return replace(self, **changes) if changes else self

    def to_dict(self) -> dict[str, Any]:
        """JSON-able and stable: part of the feature-store key."""
        return {
            "input_size": list(self.input_size),
            "mean": [round(v, 8) for v in self.mean],
            "std": [round(v, 8) for v in self.std],
            "interpolation": self.interpolation,
            "crop_pct": round(self.crop_pct, 8),
            "crop_mode": self.crop_mode,
        }

    def transform(self) -> Callable[[Image.Image], torch.Tensor]:
        """A picklable callable PIL image -> float32 tensor ``3×H×W``, normalised (DataLoader workers can use it)."""
        return PreprocessTransform(self)


class PreprocessTransform:
    """Resize (timm's eval rule), centre-crop, scale to [0, 1], normalise. Picklable for DataLoader workers."""

    def __init__(self, preprocess: Preprocess) -> None:
        self.preprocess = preprocess

    def __call__(self, image: Image.Image) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional as TF

        p = self.preprocess
        _, height, width = p.input_size
        mode = InterpolationMode(p.interpolation)
        if image.mode != "RGB":
            image = image.convert("RGB")
        # the epsilon keeps e.g. 224 / (224 / 232) = 232.00000000000003 or 231.99999999999997 at 232
        scale = (math.floor(height / p.crop_pct + 1e-6), math.floor(width / p.crop_pct + 1e-6))
        if p.crop_mode == "center" and scale[0] == scale[1]:
            # square target: resize the shorter side, keep the aspect ratio (timm and torchvision eval)
            image = TF.resize(image, [scale[0]], interpolation=mode, antialias=True)
        else:
            image = TF.resize(image, list(scale), interpolation=mode, antialias=True)
        image = TF.center_crop(image, [height, width])
        tensor = TF.to_tensor(image)  # float32 in [0, 1], 3×H×W
        return TF.normalize(tensor, list(p.mean), list(p.std))

    def __repr__(self) -> str:
        return f"PreprocessTransform({self.preprocess.to_dict()})"


@dataclass
class Backbone:
    """A loaded candidate, ready for frozen-feature extraction.

    ``module(batch)`` maps a float32 ``N×3×H×W`` batch, already transformed by ``preprocess.transform()``, to
    ``N×D`` features (pre-logits by default, else the global-average-pooled ``feature_layer``).
    ``classify(batch)`` gives ``N×Cs`` source-task logits, or is None when the model has no classifier head.
    :meth:`features_and_logits` gives both, in one forward pass where the model allows it.
    ``weights_id`` identifies the weights (sha256 of a local file's content, or a hub revision) and is part of
    the feature-store key with ``spec``, ``preprocess.to_dict()`` and ``feature_layer``. ``source_accuracy``
    is the source-task top-1 as a fraction in [0, 1] when the model card or sidecar says it.
    """

    spec: str
    module: torch.nn.Module
    classify: Callable[[torch.Tensor], torch.Tensor] | None
    preprocess: Preprocess
    weights_id: str
    num_params: int
    source_accuracy: float | None
    feature_layer: str
    weights_path: str | None
    feature_dim: int | None = None
    num_source_classes: int | None = None
    source: str = ""
    info: dict[str, Any] = field(default_factory=dict)

    def features_and_logits(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(N×D features, N×Cs logits or None)`` for one batch; one forward pass when the module supports it."""
        both = getattr(self.module, "forward_both", None)
        if callable(both):
            return both(batch)
        features = self.module(batch)
        return features, (self.classify(batch) if self.classify is not None else None)

    def describe(self) -> dict[str, Any]:
        """JSON-able metadata (for the feature store's meta and the reports)."""
        return {
            "spec": self.spec,
            "source": self.source,
            "weights_id": self.weights_id,
            "weights_path": self.weights_path,
            "preprocess": self.preprocess.to_dict(),
            "feature_layer": self.feature_layer,
            "feature_dim": self.feature_dim,
            "num_params": self.num_params,
            "num_source_classes": self.num_source_classes,
            "source_accuracy": self.source_accuracy,
            **{k: v for k, v in self.info.items() if isinstance(v, str | int | float | bool | type(None))},
        }


@dataclass(frozen=True)
class ParsedSpec:
    """``PREFIX:TARGET`` split once (by :func:`analyzer.specs.split_spec`): ``source`` is the prefix, ``target``
    what the adapter interprets; ``model`` is ``target`` before its first ``@`` and ``weights`` what follows it
    (None without an ``@``; "" for a trailing ``@``)."""

    spec: str
    source: str
    target: str
    model: str
    weights: str | None


@dataclass(frozen=True)
class LoadOptions:
    """The keyword arguments of :func:`analyzer.sources.load_backbone`, validated."""

    device: torch.device
    feature_layer: str | None = None
    image_size: int | tuple[int, ...] | None = None
    mean: tuple[float, ...] | float | None = None
    std: tuple[float, ...] | float | None = None
    probe: bool = True

    def overrides(self) -> dict[str, Any]:
        """The user's preprocessing overrides as :class:`Preprocess` field names (None = not given)."""
        return {"input_size": self.image_size, "mean": self.mean, "std": self.std}

    def apply(self, preprocess: Preprocess) -> Preprocess:
        return preprocess.with_overrides(self.image_size, self.mean, self.std)


Loader = Callable[[ParsedSpec, LoadOptions], Backbone]


@dataclass(frozen=True)
class SourceAdapter:
    """A registered model source: ``prefix`` (without the colon), its loader and the spec forms it accepts."""

    prefix: str
    load: Loader
    forms: tuple[str, ...]
    summary: str


_REGISTRY: dict[str, SourceAdapter] = {}


def register_source(prefix: str, *, forms: Sequence[str], summary: str) -> Callable[[Loader], Loader]:
    """Decorator: register ``loader(parsed, options) -> Backbone`` for specs ``prefix:...``."""

    def decorate(loader: Loader) -> Loader:
        if prefix in _REGISTRY and _REGISTRY[prefix].load is not loader:
            raise RuntimeError(f"model source {prefix!r} is registered twice")
        _REGISTRY[prefix] = SourceAdapter(prefix, loader, tuple(forms), summary)
        return loader

    return decorate


def registry() -> dict[str, SourceAdapter]:
    """The registered adapters by prefix (callers should go through :func:`analyzer.sources.available_sources`)."""
    return _REGISTRY


def resolve_local_path(text: str, what: str) -> Path:
    """An existing local file or directory named in a spec, or a BackboneError naming the missing path."""
    path = Path(text).expanduser()
    if not path.exists():
        raise BackboneError(f"{what} {str(path)!r} does not exist", "check the path in the model spec")
    return path.resolve()
