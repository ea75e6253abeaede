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
from analyzer.sources._features import HookExtractor, count_params, freeze, probe, unknown_layer_error
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


@register_source(
    "torchvision",
    forms=("torchvision:NAME[@WEIGHTS_ENUM|@none|@PATH]",),
    summary="a torchvision classifier with its pretrained weights enum (default DEFAULT), none, or a local state dict",
)
def load_torchvision(parsed: ParsedSpec, options: LoadOptions) -> Backbone:
    import torchvision
    from torchvision.models import get_model, list_models

    name, _, weights_text = parsed.target.partition("@")
    if name not in list_models():
        close = difflib.get_close_matches(name, list_models(), n=5, cutoff=0.6)
        raise BackboneError(
            f"torchvision has no model {name!r}",
            (f"did you mean {', '.join(close)}? " if close else "")
            + "list them with python -c 'import torchvision; print(torchvision.models.list_models())'",
        )
    enum = _weights_enum(name)
    weights_text = weights_text or "DEFAULT"
    sidecar: dict[str, Any] = {}
    origin: str | None = None
    local_form = f"torchvision:{name}@/path/to/state_dict.pth"
    info: dict[str, Any] = {"arch": name}

    if _is_path(weights_text):
        path = resolve_local_path(weights_text, "weights file")
        found = read_sidecar(path)
        if found is not None:
            sidecar, origin = found[0], str(found[1])
        kwargs = sidecar.get("model_kwargs", {})
        if not isinstance(kwargs, dict):
            raise BackboneError(
                f'"model_kwargs" in {origin} is not an object', 'write it as {"num_classes": 10}'
            )
        state = read_state_dict(path)
        model = get_model(name, weights=None, **kwargs)
        head = _head_name(model)
        if head and "num_classes" not in kwargs and f"{head}.weight" in state:
            wanted = int(state[f"{head}.weight"].shape[0])
            if wanted != model.get_submodule(head).out_features:
                model = get_model(name, weights=None, num_classes=wanted, **kwargs)
        load_checked(model, state, path, name)
        weights = enum.DEFAULT if enum is not None else None
        weights_id, weights_path = weights_id_with_kwargs(sha256_file(path), kwargs), str(path)
        accuracy = source_accuracy_from(sidecar, origin) if origin else None
        info["sidecar"] = origin
    elif weights_text.lower() in {"none", "random"}:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)  # a repeatable random network, so its cache entry stays valid
            model = get_model(name, weights=None)
        weights = enum.DEFAULT if enum is not None else None
        weights_id, weights_path, accuracy = (
            f"random-init:seed0:torchvision-{torchvision.__version__}",
            None,
            None,
        )
    else:
        members = list(enum.__members__) if enum is not None else []
        if enum is None or weights_text not in members:
            raise BackboneError(
                f"{name} has no weights {weights_text!r}",
                f"use one of {', '.join(members) or '(none: this model ships no weights)'}, none, or a local path",
            )
        weights = enum[weights_text]
        cached = url_cache_file(weights.url)
        if not cached.is_file() and not host_reachable(weights.url):
            raise hub_error(f"torchvision:{name}@{weights_text} ({weights.url})", local_form)
        try:
            model = get_model(name, weights=weights)
        except Exception as exc:  # urllib/HTTP/corrupt-download errors
            raise hub_error(
                f"torchvision:{name}@{weights_text}", local_form, f"{type(exc).__name__}: {exc}"
            ) from exc
        weights_id = f"torchvision:{type(weights).__name__}.{weights.name}:{Path(weights.url).name}"
        weights_path = str(cached) if cached.is_file() else None
        accuracy = _accuracy(weights)

    config = _data_config(weights)
    for key in CONFIG_ALIASES:
        if config_value(sidecar, key) is not None:
            config[key] = config_value(sidecar, key)
    preprocess = Preprocess.from_config(config, origin=origin or parsed.spec, overrides=options.overrides())
    freeze(model, options.device)

    layer = options.feature_layer
    head = _head_name(model)
    if layer is None or layer == "pre_logits":
        if head is None:
            raise BackboneError(
                f"{parsed.spec} has no final Linear classifier to take pre-logits features from",
                f"name a feature layer, e.g. one of {', '.join(n for n, _ in model.named_children())}",
            )
        extractor = HookExtractor(model, head, mode="input", logits=lambda out: out)
        layer_name = "pre_logits"
    else:
        try:
            model.get_submodule(layer)
        except AttributeError as exc:
            raise unknown_layer_error(layer, model, parsed.spec) from exc
        extractor = HookExtractor(model, layer, mode="output", logits=(lambda out: out) if head else None)
        layer_name = layer
    feature_dim, num_classes = probe(extractor, preprocess.input_size, options.device, parsed.spec)
    return Backbone(
        spec=parsed.spec,
        module=extractor,
        classify=extractor.classify if num_classes is not None else None,
        preprocess=preprocess,
        weights_id=weights_id,
        num_params=count_params(model),
        source_accuracy=accuracy,
        feature_layer=layer_name,
        weights_path=weights_path,
        feature_dim=feature_dim,
        num_source_classes=num_classes,
        info=info,
    )
