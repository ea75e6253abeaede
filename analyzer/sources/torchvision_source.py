"""``torchvision:NAME[@WEIGHTS]``: a torchvision classification model.

``WEIGHTS`` is a weights-enum member (``IMAGENET1K_V2``; default ``DEFAULT``), ``none`` for a randomly
initialised network (seeded, so repeatable: a baseline, not a candidate), or a local state-dict path
(``.pth``/``.pt``/``.safetensors``, with an optional ``.json`` sidecar like timm's: ``model_kwargs``, data
config, ``source_accuracy``). Preprocessing comes from the weights' own eval transforms (for local or no
weights, the architecture's default weights' transforms). Features are the input of the final classifier
``Linear`` (pre-logits), or a named submodule's output, global-average-pooled.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analyzer.errors import BackboneError
from analyzer.sources._build import Weights, build_backbone
from analyzer.sources._features import HookExtractor, freeze, unknown_layer_error
from analyzer.sources._files import read_sidecar, sha256_file, source_accuracy_from
from analyzer.sources._hub import host_reachable, hub_error, url_cache_file, weights_id_with_kwargs
from analyzer.sources._weights import load_checked, read_state_dict
from analyzer.sources.base import (
    CONFIG_ALIASES,
    Backbone,
    LoadOptions,
    ParsedSpec,
    Preprocess,
    config_value,
    register_source,
    resolve_local_path,
)

#: torchvision's ImageNet eval preprocessing, for architectures that ship no weights at all.
IMAGENET_DEFAULT = {
    "input_size": (3, 224, 224),
    "mean": (0.485, 0.456, 0.406),
    "std": (0.229, 0.224, 0.225),
    "interpolation": "bilinear",
    "crop_pct": 0.875,
}
WEIGHT_SUFFIXES = (".pth", ".pt", ".safetensors", ".bin", ".ckpt")


def _weights_enum(name: str) -> Any | None:
    from torchvision.models import get_model_weights

    try:
        return get_model_weights(name)
    except (ValueError, KeyError):
        return None


def _data_config(weights: Any | None) -> dict[str, Any]:
    """The preprocessing of a weights enum member's eval transforms (resize shorter side, centre crop)."""
    if weights is None:
        return dict(IMAGENET_DEFAULT)
    transforms = weights.transforms()
    crop = int(transforms.crop_size[0])
    resize = int(transforms.resize_size[0]) if transforms.resize_size else crop
    return {
        "input_size": (3, crop, crop),
        "mean": tuple(transforms.mean),
        "std": tuple(transforms.std),
        "interpolation": transforms.interpolation.value,
        "crop_pct": crop / resize,
    }


def _head_name(model: nn.Module) -> str | None:
    """The final classifier: the last ``Linear`` in module order (torchvision defines heads last)."""
    linears = [name for name, module in model.named_modules() if isinstance(module, nn.Linear)]
    return linears[-1] if linears else None


def _accuracy(weights: Any | None) -> float | None:
    metrics = (weights.meta.get("_metrics") if weights is not None else None) or {}
    for values in metrics.values():
        if isinstance(values, dict) and "acc@1" in values:
            return float(values["acc@1"]) / 100.0  # torchvision gives percentages
    return None


def _is_path(text: str) -> bool:
    return "/" in text or "\\" in text or text.lower().endswith(WEIGHT_SUFFIXES) or Path(text).exists()


#: ``(model, the weights enum member whose transforms give the preprocessing or None, Weights, sidecar, origin)``
Loaded = tuple[nn.Module, Any | None, Weights, dict[str, Any], str | None]


def _load_local(name: str, enum: Any | None, weights_text: str) -> Loaded:
    """A local state dict (classifier sized from the checkpoint) with its optional sidecar."""
    from torchvision.models import get_model

    path = resolve_local_path(weights_text, "weights file")
    sidecar: dict[str, Any] = {}
    origin: str | None = None
    found = read_sidecar(path)
    if found is not None:
        sidecar, origin = found[0], str(found[1])
    kwargs = sidecar.get("model_kwargs", {})
    if not isinstance(kwargs, dict):
        raise BackboneError(f'"model_kwargs" in {origin} is not an object', 'write it as {"num_classes": 10}')
    state = read_state_dict(path)
    model = get_model(name, weights=None, **kwargs)
    head = _head_name(model)
    if head and "num_classes" not in kwargs and f"{head}.weight" in state:
        wanted = int(state[f"{head}.weight"].shape[0])
        if wanted != model.get_submodule(head).out_features:
            model = get_model(name, weights=None, num_classes=wanted, **kwargs)
    load_checked(model, state, path, name)
    accuracy = source_accuracy_from(sidecar, origin) if origin else None
    weights = Weights(
        weights_id_with_kwargs(sha256_file(path), kwargs),
        str(path),
        accuracy,
        {"arch": name, "sidecar": origin},
    )
    return model, (enum.DEFAULT if enum is not None else None), weights, sidecar, origin


def _load_random(name: str, enum: Any | None) -> Loaded:
    """A repeatable randomly initialised network (seed 0), so its cache entry stays valid."""
    import torchvision
    from torchvision.models import get_model

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        model = get_model(name, weights=None)
    weights = Weights(f"random-init:seed0:torchvision-{torchvision.__version__}", info={"arch": name})
    return model, (enum.DEFAULT if enum is not None else None), weights, {}, None


def _load_enum(name: str, enum: Any | None, weights_text: str) -> Loaded:
    """A member of the architecture's weights enum, from torch's download cache or the network."""
    from torchvision.models import get_model

    members = list(enum.__members__) if enum is not None else []
    if enum is None or weights_text not in members:
        raise BackboneError(
            f"{name} has no weights {weights_text!r}",
            f"use one of {', '.join(members) or '(none: this model ships no weights)'}, none, or a local path",
        )
    member = enum[weights_text]
    local_form = f"torchvision:{name}@/path/to/state_dict.pth"
    cached = url_cache_file(member.url)
    if not cached.is_file() and not host_reachable(member.url):
        raise hub_error(f"torchvision:{name}@{weights_text} ({member.url})", local_form)
    try:
        model = get_model(name, weights=member)
    except Exception as exc:  # urllib/HTTP/corrupt-download errors
        raise hub_error(
            f"torchvision:{name}@{weights_text}", local_form, f"{type(exc).__name__}: {exc}"
        ) from exc
    weights = Weights(
        f"torchvision:{type(member).__name__}.{member.name}:{Path(member.url).name}",
        str(cached) if cached.is_file() else None,
        _accuracy(member),
        {"arch": name},
    )
    return model, member, weights, {}, None


def _extractor(model: nn.Module, options: LoadOptions, spec: str) -> tuple[HookExtractor, str]:
    """Pre-logits (the final Linear's input) or a named submodule's output, and the feature layer's name."""
    layer = options.feature_layer
    head = _head_name(model)
    if layer is None or layer == "pre_logits":
        if head is None:
            raise BackboneError(
                f"{spec} has no final Linear classifier to take pre-logits features from",
                f"name a feature layer, e.g. one of {', '.join(n for n, _ in model.named_children())}",
            )
        return HookExtractor(model, head, mode="input", logits=lambda out: out), "pre_logits"
    try:
        model.get_submodule(layer)
    except AttributeError as exc:
        raise unknown_layer_error(layer, model, spec) from exc
    return HookExtractor(model, layer, mode="output", logits=(lambda out: out) if head else None), layer


@register_source(
    "torchvision",
    forms=("torchvision:NAME[@WEIGHTS_ENUM|@none|@PATH]",),
    summary="a torchvision classifier with its pretrained weights enum (default DEFAULT), none, or a local state dict",
)
def load_torchvision(parsed: ParsedSpec, options: LoadOptions) -> Backbone:
    from torchvision.models import list_models

    name, weights_text = parsed.model, parsed.weights or "DEFAULT"
    if name not in list_models():
        close = difflib.get_close_matches(name, list_models(), n=5, cutoff=0.6)
        raise BackboneError(
            f"torchvision has no model {name!r}",
            (f"did you mean {', '.join(close)}? " if close else "")
            + "list them with python -c 'import torchvision; print(torchvision.models.list_models())'",
        )
    enum = _weights_enum(name)
    if _is_path(weights_text):
        model, member, weights, sidecar, origin = _load_local(name, enum, weights_text)
    elif weights_text.lower() in {"none", "random"}:
        model, member, weights, sidecar, origin = _load_random(name, enum)
    else:
        model, member, weights, sidecar, origin = _load_enum(name, enum, weights_text)
    config = _data_config(member)
    for key in CONFIG_ALIASES:
        if config_value(sidecar, key) is not None:
            config[key] = config_value(sidecar, key)
    preprocess = Preprocess.from_config(config, origin=origin or parsed.spec, overrides=options.overrides())
    freeze(model, options.device)
    extractor, layer_name = _extractor(model, options, parsed.spec)
    return build_backbone(
        parsed, options, extractor, preprocess, weights, feature_layer=layer_name, counted=model
    )
