"""``timm:NAME[.TAG]`` (pretrained weights from the hub) and ``timm:ARCH@PATH`` (local weights).

Local weights are a ``.safetensors`` file or a ``.pth``/``.pt`` state dict (``{"state_dict": ...}``-style
wrappers and ``module.`` prefixes are undone); the classifier size is read from the checkpoint; every
missing, unexpected or mis-shaped key is an error. An optional sidecar ``PATH`` with suffix ``.json`` may
carry ``model_kwargs`` (passed to ``timm.create_model``), data-config keys (``input_size``, ``mean``, ``std``,
``interpolation``, ``crop_pct``, ``crop_mode``) that override the architecture's defaults, and
``source_accuracy``. The weights id is the file's sha256 (plus a hash of ``model_kwargs`` when given).

Features: ``forward_head(forward_features(x), pre_logits=True)``; with a feature layer, an integer block
index (``forward_intermediates``) or a dotted submodule name, global-average-pooled.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analyzer.errors import BackboneError
from analyzer.sources._build import Weights, build_backbone
from analyzer.sources._features import HookExtractor, freeze, pool_features, unknown_layer_error
from analyzer.sources._files import read_sidecar, sha256_file, source_accuracy_from
from analyzer.sources._hub import (
    hf_cached_file,
    hf_endpoint,
    hf_offline_unless_reachable,
    host_reachable,
    hub_error,
    snapshot_revision,
    url_cache_file,
    weights_id_with_kwargs,
)
from analyzer.sources._weights import brief, load_checked, read_state_dict
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


class TimmExtractor(nn.Module):
    """Pre-logits features of a timm model; logits from its classifier applied to them (one pass) when that
    reproduces ``model(x)``, else from a second full pass."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model: Any = model  # a timm model: forward_head, get_classifier... are not nn.Module's
        self.has_head = int(getattr(model, "num_classes", 0) or 0) > 0
        self.one_pass = False  # set by check_one_pass() once the model is on its device

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return pool_features(self.model.forward_head(self.model.forward_features(batch), pre_logits=True))

    def forward_both(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self(batch)
        if not self.has_head:
            return features, None
        logits = self.model.get_classifier()(features) if self.one_pass else self.model(batch)
        return features, logits

    def classify(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch)

    def check_one_pass(self, input_size: tuple[int, int, int], device: torch.device) -> None:
        """Use ``classifier(pre_logits)`` as the logits only where it equals ``model(x)`` on a random batch
        (heads with extra layers after pre-logits, e.g. distilled ViTs, need the full pass)."""
        if not self.has_head:
            return
        generator = torch.Generator().manual_seed(0)
        batch = torch.randn((2, *input_size), generator=generator).to(device)
        try:
            with torch.inference_mode():
                expected = self.model(batch)
                got = self.model.get_classifier()(self(batch))
            self.one_pass = bool(
                got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-3, atol=1e-4)
            )
        except Exception:  # noqa: BLE001 - any failure here only means: use the two-pass path
            self.one_pass = False


class TimmIntermediate(nn.Module):
    """Block ``index`` of ``forward_intermediates`` (negative counts from the end), pooled to ``N×D``."""

    def __init__(self, model: nn.Module, index: int) -> None:
        super().__init__()
        self.model: Any = model  # a timm model: forward_intermediates is not nn.Module's
        self.index = index
        self.has_head = int(getattr(model, "num_classes", 0) or 0) > 0

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        outputs = self.model.forward_intermediates(batch, indices=[self.index], intermediates_only=True)
        return pool_features(outputs[0])

    def forward_both(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return self(batch), (self.model(batch) if self.has_head else None)

    def classify(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(batch)


def _unknown_model(name: str) -> BackboneError:
    import timm

    arch = name.split(".")[0]
    close = difflib.get_close_matches(arch, timm.list_models(), n=5, cutoff=0.6)
    hint = f"did you mean {', '.join(close)}? " if close else ""
    return BackboneError(
        f"timm has no model {name!r}",
        f"{hint}list them with python -c \"import timm; print(timm.list_models('*{arch[:6]}*'))\"",
    )


def _create(name: str, *, pretrained: bool, **kwargs: Any) -> Any:
    """A timm model: an ``nn.Module`` with timm's API (``pretrained_cfg``, ``reset_classifier``, ...)."""
    import timm

    if not timm.is_model(name.split(".")[0]):
        raise _unknown_model(name)
    try:
        return timm.create_model(name, pretrained=pretrained, **kwargs)
    except (RuntimeError, ValueError, TypeError) as exc:
        if "pretrained tag" in str(exc).lower() or "unknown model" in str(exc).lower():
            raise _unknown_model(name) from exc
        if pretrained:
            raise
        raise BackboneError(
            f"timm cannot build {name} with {kwargs or 'its defaults'} ({exc})",
            'check "model_kwargs" in the sidecar JSON',
        ) from exc


TimmModule = TimmExtractor | TimmIntermediate | HookExtractor


def _extractor(model: nn.Module, options: LoadOptions, spec: str) -> tuple[TimmModule, str]:
    layer = options.feature_layer
    if layer is None or layer == "pre_logits":
        return TimmExtractor(model), "pre_logits"
    has_head = int(getattr(model, "num_classes", 0) or 0) > 0
    if layer.lstrip("-").isdigit():
        if not hasattr(model, "forward_intermediates"):
            raise BackboneError(
                f"{spec} does not support block indices as feature layers",
                "name a submodule instead (a dotted module path)",
            )
        return TimmIntermediate(model, int(layer)), layer
    try:
        model.get_submodule(layer)
    except AttributeError as exc:
        raise unknown_layer_error(layer, model, spec, " or an integer block index") from exc
    return HookExtractor(model, layer, mode="output", logits=(lambda out: out) if has_head else None), layer


def _finish(
    parsed: ParsedSpec, options: LoadOptions, model: nn.Module, preprocess: Preprocess, weights: Weights
) -> Backbone:
    freeze(model, options.device)
    extractor, layer_name = _extractor(model, options, parsed.spec)
    return build_backbone(
        parsed, options, extractor, preprocess, weights, feature_layer=layer_name, counted=model
    )


def _data_config(model: nn.Module, sidecar: dict[str, Any]) -> dict[str, Any]:
    """timm's resolved data config for ``model``, with any data-config keys of the sidecar on top."""
    import timm.data

    config = dict(timm.data.resolve_model_data_config(model))
    for name in CONFIG_ALIASES:
        value = config_value(sidecar, name)
        if value is not None:
            config[name] = value
    return config


def _load_local(parsed: ParsedSpec, options: LoadOptions, arch: str, weights: str) -> Backbone:
    path = resolve_local_path(weights, "weights file")
    if path.is_dir():
        raise BackboneError(
            f"{path} is a directory, not a weights file", "give the .safetensors or .pth file itself"
        )
    found = read_sidecar(path)
    sidecar, origin = found if found is not None else ({}, None)
    model_kwargs = sidecar.get("model_kwargs", {})
    if not isinstance(model_kwargs, dict):
        raise BackboneError(
            f'"model_kwargs" in {origin} is not an object', 'write it as {"drop_rate": 0.0, ...}'
        )
    state = read_state_dict(path)
    model = _create(arch, pretrained=False, **model_kwargs)
    if "num_classes" not in model_kwargs:
        # size the classifier from the checkpoint: fine-tuned heads differ from the architecture's default
        classifier = model.pretrained_cfg.get("classifier")
        classifier = classifier[0] if isinstance(classifier, list | tuple) else classifier
        weight = state.get(f"{classifier}.weight") if classifier else None
        wanted = int(weight.shape[0]) if weight is not None else 0
        if wanted != int(getattr(model, "num_classes", wanted)):
            model.reset_classifier(wanted)
    load_checked(model, state, path, arch)
    preprocess = Preprocess.from_config(
        _data_config(model, sidecar), origin=str(origin or path), overrides=options.overrides()
    )
    identity = Weights(
        weights_id_with_kwargs(sha256_file(path), model_kwargs),
        str(path),
        source_accuracy_from(sidecar, str(origin)) if origin else None,
        {"arch": arch, "sidecar": str(origin) if origin else None},
    )
    return _finish(parsed, options, model, preprocess, identity)


def _load_hub(parsed: ParsedSpec, options: LoadOptions, name: str) -> Backbone:
    import timm.models

    arch = name.split(".")[0]
    if not timm.is_model(arch):
        raise _unknown_model(name)
    try:
        cfg = timm.models.get_pretrained_cfg(name)
    except RuntimeError as exc:  # "Invalid pretrained tag"
        tags = list(timm.list_pretrained(f"{arch}.*"))
        raise BackboneError(
            f"timm has no model {name!r} (unknown pretrained tag)",
            f"use one of {', '.join(tags[:10]) or arch}",
        ) from exc
    if cfg is None:
        raise _unknown_model(name)
    local_form = f"timm:{arch}@/path/to/weights.safetensors"
    hub_id = cfg.hf_hub_id
    # timm's config types url as str or a (url, ...) pair; its own loader only ever uses it as a str
    url = cfg.url[0] if isinstance(cfg.url, tuple) else cfg.url
    cached: Path | None = None
    if hub_id:
        filenames = tuple(
            dict.fromkeys(f for f in (cfg.hf_hub_filename, "model.safetensors", "pytorch_model.bin") if f)
        )
        cached = hf_cached_file(hub_id, filenames)
        if cached is None and not host_reachable(hf_endpoint()):
            raise hub_error(f"timm:{name} (Hugging Face repo {hub_id})", local_form)
    elif url:
        cached = url_cache_file(url)
        if not cached.is_file():
            if not host_reachable(url):
                raise hub_error(f"timm:{name} ({url})", local_form)
            cached = None
    else:
        raise BackboneError(f"timm has no pretrained weights for {name}", f"pass local weights: {local_form}")
    try:
        with hf_offline_unless_reachable():
            model = _create(name, pretrained=True)
    except BackboneError:
        raise
    except Exception as exc:  # network/hub failures come as many types (OSError, HTTP errors, hub errors)
        raise hub_error(f"timm:{name}", local_form, brief(exc)) from exc
    if hub_id:
        cached = cached or hf_cached_file(hub_id, ("model.safetensors", "pytorch_model.bin"))
        revision = snapshot_revision(cached) if cached else None
        weights_id = f"hf-hub:{hub_id}@{revision or 'main'}"
    else:
        assert url is not None  # no hub id means the url branch above ran (else it raised)
        cached = url_cache_file(url)
        weights_id = f"url:{url}"
    preprocess = Preprocess.from_config(
        _data_config(model, {}), origin=f"timm:{name}", overrides=options.overrides()
    )
    weights = Weights(
        weights_id,
        str(cached) if cached is not None and cached.is_file() else None,
        None,  # timm's pretrained configs carry no accuracy
        {"arch": arch, "pretrained_tag": cfg.tag},
    )
    return _finish(parsed, options, model, preprocess, weights)


@register_source(
    "timm",
    forms=("timm:NAME[.TAG]", "timm:ARCH@PATH"),
    summary="a timm model: pretrained from the hub, or an architecture with local .safetensors/.pth weights "
    "(optional PATH .json sidecar: model_kwargs, data config, source_accuracy)",
)
def load_timm(parsed: ParsedSpec, options: LoadOptions) -> Backbone:
    name, weights = parsed.model, parsed.weights
    if weights is not None:
        if not weights:
            raise BackboneError(
                f"{parsed.spec} names no weights file after @", f"write timm:{name}@/path/weights.pth"
            )
        return _load_local(parsed, options, name, weights)
    return _load_hub(parsed, options, name)
