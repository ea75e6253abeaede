"""Load any candidate backbone from a spec string: ``timm:``, ``torchvision:``, ``hf:``, ``torchscript:``, ``export:``.

``load_backbone(spec, ...) -> Backbone`` is the one entry point extraction uses. Each source is one module
``<name>_source.py`` in this package that registers its loader with
:func:`analyzer.sources.base.register_source`; modules are discovered by that name, so adding a source is one
new file. Heavy libraries (timm, transformers, torchvision models) are imported only by the adapter that
needs them, when a spec of that source is loaded.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Sequence

import torch

from analyzer.device import resolve_device
from analyzer.errors import BackboneError
from analyzer.sources.base import Backbone, LoadOptions, ParsedSpec, Preprocess, register_source, registry
from analyzer.specs import split_spec

__all__ = [
    "Backbone",
    "Preprocess",
    "ParsedSpec",
    "available_sources",
    "load_backbone",
    "parse_spec",
    "register_source",
]

_DISCOVERED = False


def _discover() -> None:
    """Import every ``*_source`` module of this package once, so their loaders register themselves."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    for info in pkgutil.iter_modules(__path__):
        if info.name.endswith("_source"):
            importlib.import_module(f"{__name__}.{info.name}")
    _DISCOVERED = True


def available_sources() -> dict[str, str]:
    """``{prefix: "forms — summary"}`` of every registered model source, sorted by prefix."""
    _discover()
    return {
        prefix: f"{' | '.join(adapter.forms)} — {adapter.summary}"
        for prefix, adapter in sorted(registry().items())
    }


def parse_spec(spec: str) -> ParsedSpec:
    """Split ``PREFIX:TARGET`` and check the prefix is a registered source.

    Raises :class:`BackboneError` listing the valid prefixes for an unknown one (and suggesting
    ``torchscript:`` when the spec is a bare ``.pt`` path).
    """
    _discover()
    parts = split_spec(spec)
    text, prefix, target = parts.text, parts.source, parts.target
    valid = ", ".join(f"{p}:" for p in sorted(registry()))
    if not parts.has_source or prefix not in registry():
        hint = ""
        if parts.has_source:  # an unknown prefix such as onnx: (prefixing it again would not help)
            hint = f" ({prefix!r} is not a model source this analyzer reads)"
        elif text.endswith((".pt", ".pth", ".ts")):
            hint = f" (for a TorchScript file write torchscript:{text})"
        elif text.endswith(".pt2"):
            hint = f" (for a torch.export program write export:{text})"
        raise BackboneError(
            f"model spec {text!r} has no known source prefix{hint}",
            f"start it with one of {valid}, e.g. timm:resnet50.a1_in1k or timm:resnet18@/path/weights.safetensors",
        )
    if not target:
        raise BackboneError(
            f"model spec {text!r} names no model after {prefix}:", registry()[prefix].forms[0]
        )
    return ParsedSpec(spec=text, source=prefix, target=target, model=parts.model, weights=parts.weights)


def load_backbone(
    spec: str,
    *,
    device: str | torch.device | None = "cpu",
    feature_layer: str | int | None = None,
    image_size: int | Sequence[int] | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    probe: bool = True,
) -> Backbone:
    """Load the backbone a spec names, frozen in eval mode on ``device`` (``None``/``"auto"``: CUDA if present).

    ``feature_layer``: None for the pre-logits features; otherwise an intermediate layer, global-average-pooled
    (a dotted submodule name, or for timm/hf an integer block index). ``image_size`` (int or (H, W)),
    ``mean``/``std`` (3 floats for inputs in [0, 1]) override the model's own preprocessing. ``probe=False``
    skips the forward passes that check the module (for callers that want the weights alone, the weight
    spectrum): ``feature_dim``, ``num_source_classes`` and ``classify`` are then None.
    Raises :class:`BackboneError` (unknown source, missing weights, unreachable hub, ...) with the fix.
    """
    parsed = parse_spec(spec)
    options = LoadOptions(
        device=resolve_device(device),
        feature_layer=None if feature_layer is None else str(feature_layer),
        image_size=None
        if image_size is None
        else (image_size if isinstance(image_size, int) else tuple(image_size)),
        mean=None if mean is None else (mean if isinstance(mean, int | float) else tuple(mean)),
        std=None if std is None else (std if isinstance(std, int | float) else tuple(std)),
        probe=probe,
    )
    backbone = registry()[parsed.source].load(parsed, options)
    backbone.source = parsed.source
    backbone.module.eval()  # the adapters' wrappers too, not only the wrapped model (dropout, batch norm)
    return backbone
