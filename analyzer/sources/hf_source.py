"""``hf:REPO_ID[@REVISION]`` or ``hf:LOCAL_DIR``: a Hugging Face ``transformers`` vision model.

A checkpoint whose config names a ``*ForImageClassification`` architecture is loaded with its head
(``AutoModelForImageClassification``): features are the head's input (pre-logits), ``classify`` its logits.
Otherwise ``AutoModel``: features are ``pooler_output``, else the CLS token of ``last_hidden_state`` (a
convolutional ``N×C×H×W`` state is average-pooled). Preprocessing comes from the ``AutoImageProcessor`` saved
with the model. A feature layer is an integer index into ``hidden_states`` or a dotted submodule name,
global-average-pooled. Remote code is never run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analyzer.errors import BackboneError
from analyzer.sources._build import Weights, build_backbone
from analyzer.sources._features import HookExtractor, freeze, pool_features, unknown_layer_error
from analyzer.sources._files import sha256_files
from analyzer.sources._hub import (
    hf_cached_file,
    hf_endpoint,
    hf_offline_unless_reachable,
    host_reachable,
    hub_error,
    snapshot_revision,
)
from analyzer.sources._weights import brief
from analyzer.sources.base import (
    INTERPOLATIONS,
    Backbone,
    LoadOptions,
    ParsedSpec,
    Preprocess,
    register_source,
)

WEIGHT_GLOBS = ("*.safetensors", "*.bin", "*.pt", "*.pth")


class PixelValues(nn.Module):
    """Calls a transformers model with ``pixel_values=batch`` (hooks see the wrapped model as ``model.*``)."""

    def __init__(self, model: nn.Module, **call_kwargs: Any) -> None:
        super().__init__()
        self.model = model
        self.call_kwargs = call_kwargs

    def forward(self, batch: torch.Tensor) -> Any:
        return self.model(pixel_values=batch, **self.call_kwargs)


class HFBaseExtractor(nn.Module):
    """Features of a headless model: ``pooler_output``, else the CLS token (tokens) or spatial mean (maps)."""

    def __init__(self, model: nn.Module, use_pooler: bool) -> None:
        super().__init__()
        self.model = model
        self.use_pooler = use_pooler

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        out = self.model(pixel_values=batch)
        pooled = getattr(out, "pooler_output", None) if self.use_pooler else None
        if pooled is not None:
            return pool_features(pooled)
        hidden = out.last_hidden_state
        return hidden[:, 0] if hidden.ndim == 3 else pool_features(hidden)

    def forward_both(self, batch: torch.Tensor) -> tuple[torch.Tensor, None]:
        return self(batch), None


class HFHiddenState(nn.Module):
    """``hidden_states[index]`` (embeddings are index 0; negative counts from the end), pooled to ``N×D``."""

    def __init__(self, model: nn.Module, index: int, has_head: bool) -> None:
        super().__init__()
        self.model = model
        self.index = index
        self.has_head = has_head

    def forward_both(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        out = self.model(pixel_values=batch, output_hidden_states=True)
        features = pool_features(out.hidden_states[self.index])
        return features, (out.logits if self.has_head else None)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.forward_both(batch)[0]

    def classify(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model(pixel_values=batch).logits


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers prints a load report and progress bars; the analyzer reports problems itself."""
    from transformers.utils import logging

    previous = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        logging.set_verbosity(previous)
        logging.enable_progress_bar()


def _preprocess(processor: Any, origin: str, options: LoadOptions) -> Preprocess:
    """A :class:`Preprocess` equivalent to an HF image processor's eval path.

    HF computes ``(pixel * rescale_factor - mean) / std``; our tensors are ``pixel / 255``, so mean and std are
    divided by ``255 * rescale_factor`` (exact; a no-op for the usual factor 1/255).
    """

    def read(name: str) -> Any:
        value: Any = getattr(processor, name, None)
        return dict(value.items()) if hasattr(value, "items") else value

    size, crop = read("size") or {}, read("crop_size") or {}
    if isinstance(size, int):
        size = {"shortest_edge": size}
    do_crop = bool(getattr(processor, "do_center_crop", False)) and bool(crop)
    config: dict[str, Any] = {}
    height: int | None
    width: int | None
    if size.get("height") and size.get("width"):
        height, width = int(size["height"]), int(size["width"])
        config["crop_mode"] = "squash"  # HF resizes both sides to (height, width)
    elif size.get("shortest_edge"):
        height = width = int(size["shortest_edge"])
        config["crop_mode"] = "center"
    else:
        height = width = None
    if do_crop and height:
        crop_h, crop_w = int(crop["height"]), int(crop["width"])
        config["input_size"] = (3, crop_h, crop_w)
        config["crop_pct"] = min(1.0, crop_h / height)
    elif height:
        config["input_size"] = (3, height, width)
        config["crop_pct"] = 1.0
        processor_crop = getattr(processor, "crop_pct", None)
        if processor_crop and size.get("shortest_edge") and height < 384:
            # ConvNeXt's processor: resize the shorter side to size / crop_pct, centre-crop size (as timm)
            config["crop_pct"] = float(processor_crop)
    factor = (
        float(getattr(processor, "rescale_factor", 1 / 255))
        if getattr(processor, "do_rescale", True)
        else 1.0
    )
    scale = 255.0 * factor
    if getattr(processor, "do_normalize", True) and getattr(processor, "image_mean", None) is not None:
        config["mean"] = [float(m) / scale for m in processor.image_mean]
        config["std"] = [float(s) / scale for s in processor.image_std]
    elif processor is not None:
        config["mean"], config["std"] = [0.0] * 3, [1.0 / scale] * 3
    resample = getattr(processor, "resample", None)
    if resample is not None:
        code = int(getattr(resample, "value", resample))
        config["interpolation"] = next((n for n, c in INTERPOLATIONS.items() if c == code), "bilinear")
    try:
        return Preprocess.from_config(config, origin=origin, overrides=options.overrides())
    except BackboneError as exc:
        raise BackboneError(
            exc.message,
            "save the image processor beside the model (processor.save_pretrained(DIR)); the `extract` "
            "command also takes --image-size/--mean/--std",
        ) from exc


def _locate(parsed: ParsedSpec) -> tuple[str, str | None, Path | None]:
    """``(name_or_path, revision, local_dir)`` for the target (a local directory may have ``@`` in its path)."""
    target = parsed.target
    local = Path(target).expanduser()
    if local.is_dir():
        return str(local.resolve()), None, local.resolve()
    if target.startswith(("/", ".", "~")) or local.suffix in {".json", ".safetensors", ".bin"}:
        raise BackboneError(
            f"{target!r} is not a directory",
            "give a directory written by model.save_pretrained(DIR) (with config.json), or a hub repo id",
        )
    return parsed.model, (parsed.weights or None), None


#: ``(config, model, loading info, image processor or None, has a classification head)``
Loaded = tuple[Any, nn.Module, dict[str, Any], Any, bool]


def _load_model(name: str, revision: str | None, local_dir: Path | None, local_form: str) -> Loaded:
    """The config, the model (with its head when the config names a ``*ForImageClassification``) and its image
    processor, from a local directory or the hub (its cache first); remote code is never run."""
    from transformers import AutoConfig, AutoImageProcessor, AutoModel, AutoModelForImageClassification

    kwargs: dict[str, Any] = {"revision": revision, "trust_remote_code": False}
    try:
        # a local directory needs no hub at all: do not even probe the network for it
        hub = hf_offline_unless_reachable() if local_dir is None else contextlib.nullcontext()
        with hub, _quiet_transformers():
            config = AutoConfig.from_pretrained(name, **kwargs)
            has_head = any(str(a).endswith("ForImageClassification") for a in (config.architectures or []))
            loader = AutoModelForImageClassification if has_head else AutoModel
            model, loading = loader.from_pretrained(name, output_loading_info=True, **kwargs)
            try:
                processor = AutoImageProcessor.from_pretrained(name, **kwargs)
            except (OSError, ValueError):
                processor = None  # none saved: the overrides must say the preprocessing
    except (OSError, ValueError) as exc:
        if local_dir is not None:
            raise BackboneError(
                f"cannot load the transformers model in {local_dir} ({brief(exc, 300)})",
                "check the directory was written by save_pretrained and the architecture is a vision model",
            ) from exc
        raise hub_error(f"hf:{name}", local_form, brief(exc)) from exc
    return config, model, loading, processor, has_head


def _use_pooler(name: str, loading: dict[str, Any]) -> bool:
    """Whether the checkpoint has pooler weights; any other missing or mis-shaped key is an error."""
    missing = list(loading.get("missing_keys", []))
    mismatched = [
        str(m[0]) if isinstance(m, tuple | list) else str(m) for m in loading.get("mismatched_keys", [])
    ]
    # a base-model checkpoint without pooler weights gets a random pooler: use the CLS token instead
    use_pooler = not any(k.startswith("pooler.") or ".pooler." in k for k in missing)
    missing = [k for k in missing if not (k.startswith("pooler.") or ".pooler." in k)]
    if missing or mismatched:
        raise BackboneError(
            f"hf:{name} does not fit its checkpoint: missing {missing[:8]}, mismatched shapes {mismatched[:8]}",
            "check the checkpoint and config.json belong together",
        )
    return use_pooler


HFModule = HookExtractor | HFBaseExtractor | HFHiddenState


def _extractor(
    model: nn.Module, options: LoadOptions, has_head: bool, use_pooler: bool, spec: str, name: str
) -> tuple[HFModule, str]:
    """The feature extractor for ``options.feature_layer`` and the feature layer's name (``spec``: the model spec,
    ``name``: the repo id or directory, for the messages)."""
    layer = options.feature_layer
    if layer is None or layer == "pre_logits":
        if not has_head:
            return HFBaseExtractor(model, use_pooler), "pre_logits"
        head = "classifier" if isinstance(getattr(model, "classifier", None), nn.Module) else None
        if head is None:
            linears = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
            head = linears[-1] if linears else None
        if head is None:
            raise BackboneError(f"hf:{name} has no classifier module", "name a feature layer instead")
        return HookExtractor(
            PixelValues(model), f"model.{head}", mode="input", logits=lambda out: out.logits
        ), ("pre_logits")
    if layer.lstrip("-").isdigit():
        return HFHiddenState(model, int(layer), has_head), layer
    try:
        model.get_submodule(layer)
    except AttributeError as exc:
        raise unknown_layer_error(layer, model, spec, " or an integer hidden-state index") from exc
    logits = (lambda out: out.logits) if has_head else None
    return HookExtractor(PixelValues(model), f"model.{layer}", mode="output", logits=logits), layer


def _weights(
    name: str, revision: str | None, local_dir: Path | None, config: Any, loading: dict[str, Any]
) -> Weights:
    """A local directory's content hash, or the hub commit of the cached snapshot."""
    if local_dir is not None:
        files = [p for pattern in WEIGHT_GLOBS for p in local_dir.glob(pattern)]
        weights_id = sha256_files([*files, local_dir / "config.json"], local_dir)
        weights_path = str(sorted(files)[0]) if len(files) == 1 else None
    else:
        cached = hf_cached_file(name, ("model.safetensors", "pytorch_model.bin"), revision)
        commit = getattr(config, "_commit_hash", None) or (snapshot_revision(cached) if cached else None)
        weights_id = f"hf-hub:{name}@{commit or revision or 'main'}"
        weights_path = str(cached) if cached is not None else None
    info = {
        "model_type": getattr(config, "model_type", None),
        "unexpected_keys": len(loading.get("unexpected_keys", [])),
    }
    # model cards state accuracy in free text; not parsed
    return Weights(weights_id, weights_path, None, info)


@register_source(
    "hf",
    forms=("hf:REPO_ID[@REVISION]", "hf:LOCAL_DIR"),
    summary="a Hugging Face transformers vision model (AutoModel/AutoModelForImageClassification + AutoImageProcessor)",
)
def load_hf(parsed: ParsedSpec, options: LoadOptions) -> Backbone:
    name, revision, local_dir = _locate(parsed)
    local_form = (
        "hf:/path/to/dir (huggingface-cli download REPO --local-dir DIR on a machine with network access)"
    )
    if local_dir is None and hf_cached_file(name, ("config.json",), revision) is None:
        if not host_reachable(hf_endpoint()):
            raise hub_error(f"hf:{name}", local_form)
    if local_dir is not None and not (local_dir / "config.json").is_file():
        raise BackboneError(
            f"{local_dir} has no config.json", "save the model there with model.save_pretrained(DIR)"
        )
    config, model, loading, processor, has_head = _load_model(name, revision, local_dir, local_form)
    use_pooler = _use_pooler(name, loading)
    origin = f"the image processor of {name}"
    preprocess = _preprocess(
        processor, origin if processor is not None else f"{name} (no image processor)", options
    )
    freeze(model, options.device)
    extractor, layer_name = _extractor(model, options, has_head, use_pooler, parsed.spec, name)
    weights = _weights(name, revision, local_dir, config, loading)

    def classify(batch: torch.Tensor) -> torch.Tensor:
        logits = extractor.forward_both(batch)[1]
        if logits is None:
            raise RuntimeError(f"{parsed.spec} has no classifier head")
        return logits

    return build_backbone(
        parsed,
        options,
        extractor,
        preprocess,
        weights,
        feature_layer=layer_name,
        counted=model,
        classify=classify,
    )
