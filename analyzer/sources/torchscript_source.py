"""``torchscript:PATH`` (a scripted or traced module) and ``export:PATH`` (a ``torch.export.save`` program).

The module maps a normalised float32 ``N×3×H×W`` batch to ``N×D`` features. Its preprocessing comes from the
sidecar ``PATH`` with suffix ``.json`` (timm data-config keys ``input_size``, ``mean``, ``std``,
``interpolation``, ``crop_pct``, or the aliases in :data:`analyzer.sources.base.CONFIG_ALIASES`), else from a
``meta.json`` stored inside a TorchScript file, else from the image-size/mean/std overrides; otherwise loading
fails asking for them. A TorchScript ``classify`` method gives the source logits; an exported program whose
forward returns ``(features, logits)`` gives them too.
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analyzer.errors import BackboneError
from analyzer.sources._build import Weights, build_backbone
from analyzer.sources._features import first_tensor, pool_features
from analyzer.sources._files import read_sidecar, sha256_file, sidecar_paths, source_accuracy_from
from analyzer.sources._weights import torch_load_reason
from analyzer.sources.base import (
    Backbone,
    LoadOptions,
    ParsedSpec,
    Preprocess,
    config_value,
    register_source,
    resolve_local_path,
)


class ScriptExtractor(nn.Module):
    """Features from a TorchScript module's ``forward`` (or another exported method), logits from ``classify``."""

    def __init__(self, script: torch.jit.ScriptModule, method: str = "forward") -> None:
        super().__init__()
        self.model = script
        self.method = method
        self.has_classify = hasattr(script, "classify")
        self.head: nn.Module | None = None  # set by check_one_pass()

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        output = self.model(batch) if self.method == "forward" else getattr(self.model, self.method)(batch)
        return pool_features(first_tensor(output))

    def forward_both(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        features = self(batch)
        if not self.has_classify:
            return features, None
        if self.head is not None:
            return features, self.head(features)  # one pass: the head was checked to reproduce classify()
        return features, self.classify(batch)  # TorchScript has no hooks: a second pass

    def check_one_pass(self, input_size: tuple[int, int, int], device: torch.device) -> None:
        """Use the module's last ``Linear`` on the features as the logits where that equals ``classify(x)``
        on a random batch, so extraction needs one forward pass instead of two."""
        self.head = None
        if not self.has_classify or self.method != "forward":
            return
        linears = [m for _, m in self.model.named_modules() if getattr(m, "original_name", "") == "Linear"]
        if not linears:
            return
        batch = torch.randn((2, *input_size), generator=torch.Generator().manual_seed(0)).to(device)
        try:
            with torch.inference_mode():
                expected = self.classify(batch)
                got = linears[-1](self(batch))
            if got.shape == expected.shape and torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
                self.head = linears[-1]
        except Exception:  # noqa: BLE001 - a head that does not fit only means: keep the two-pass path
            self.head = None

    def classify(self, batch: torch.Tensor) -> torch.Tensor:
        return self.model.classify(batch)


class ExportExtractor(nn.Module):
    """Wraps an exported program's module; a program exported with a fixed batch size gets padded chunks.

    ``forward`` returns the features (the first output); ``forward_both`` also the logits when the program
    returns ``(features, logits)``.
    """

    def __init__(self, program_module: nn.Module, static_batch: int | None, returns_logits: bool) -> None:
        super().__init__()
        self.model = program_module
        self.static_batch = static_batch
        self.returns_logits = returns_logits

    def train(self, mode: bool = True) -> ExportExtractor:
        # the graph is fixed in the mode it was exported in, and GraphModule.train()/eval() raise, so
        # extraction's module.eval() must not recurse into it
        self.training = mode
        return self

    def _outputs(self, batch: torch.Tensor) -> list[torch.Tensor]:
        if self.static_batch is None:
            out = self.model(batch)
            return list(out) if isinstance(out, tuple | list) else [out]
        # a batch-size guard in the program: run chunks of exactly that size, padding the last one
        size, pieces = self.static_batch, []
        for start in range(0, batch.shape[0], size):
            chunk = batch[start : start + size]
            real = chunk.shape[0]
            if real < size:
                chunk = torch.cat([chunk, chunk.new_zeros((size - real, *chunk.shape[1:]))])
            out = self.model(chunk)
            out = list(out) if isinstance(out, tuple | list) else [out]
            pieces.append([o[:real] for o in out])
        return [torch.cat([p[i] for p in pieces]) for i in range(len(pieces[0]))]

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return pool_features(self._outputs(batch)[0])

    def forward_both(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        outs = self._outputs(batch)
        return pool_features(outs[0]), (outs[1] if self.returns_logits and len(outs) > 1 else None)

    def classify(self, batch: torch.Tensor) -> torch.Tensor:
        logits = self.forward_both(batch)[1]
        if logits is None:
            raise RuntimeError("this program returns no source logits")
        return logits


def _config(path: Path, embedded: str | None) -> tuple[dict[str, Any], str]:
    """The preprocessing config and where it came from: the sidecar, else embedded meta.json, else empty."""
    found = read_sidecar(path)
    if found is not None:
        return found[0], f"the sidecar {found[1]}"
    if embedded:
        try:
            data = json.loads(embedded)
        except json.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            return data, f"the meta.json inside {path}"
    return {}, f"{path} (no sidecar {sidecar_paths(path)[0].name}, no embedded meta.json)"


def _check_declared(config: dict[str, Any], origin: str, key: str, actual: int | None, spec: str) -> None:
    """A sidecar's declared feature_dim / num_source_classes must match what the module returns."""
    declared = config.get(key)
    if declared is not None and actual is not None and int(declared) != actual:
        raise BackboneError(
            f"{origin} declares {key}={declared} but {spec} returns {actual}",
            "fix the sidecar or export the intended module",
        )


def _backbone(
    parsed: ParsedSpec,
    options: LoadOptions,
    path: Path,
    extractor: ScriptExtractor | ExportExtractor,
    config: dict[str, Any],
    origin: str,
    layer_name: str,
) -> Backbone:
    preprocess = Preprocess.from_config(config, origin=origin, overrides=options.overrides())

    def check(feature_dim: int, num_classes: int | None) -> None:
        if layer_name == "pre_logits":
            _check_declared(config, origin, "feature_dim", feature_dim, parsed.spec)
        _check_declared(config, origin, "num_source_classes", num_classes, parsed.spec)

    info: dict[str, Any] = {
        "config_origin": origin,
        **{k: config[k] for k in ("name", "arch", "source_dataset") if k in config},
    }
    weights = Weights(sha256_file(path), str(path), source_accuracy_from(config, origin), info)
    return build_backbone(
        parsed, options, extractor, preprocess, weights, feature_layer=layer_name, check=check
    )


@register_source(
    "torchscript",
    forms=("torchscript:PATH",),
    summary="a scripted/traced module (features from forward, source logits from a classify method); "
    "preprocessing from PATH's .json sidecar",
)
def load_torchscript(parsed: ParsedSpec, options: LoadOptions) -> Backbone:
    path = resolve_local_path(parsed.target, "TorchScript file")
    extra = {"meta.json": ""}
    try:
        with warnings.catch_warnings():
            # torch.jit.load warns that TorchScript is deprecated; reading these files is the point here
            warnings.simplefilter("ignore", FutureWarning)
            script = torch.jit.load(str(path), map_location=options.device, _extra_files=extra)
    except Exception as exc:  # torch raises RuntimeError or pickle errors for non-TorchScript files
        raise BackboneError(
            f"{path} is not a TorchScript file ({torch_load_reason(exc)})",
            "save it with torch.jit.save(torch.jit.script(model), path), or use timm:ARCH@PATH for a state dict "
            "or export:PATH for a torch.export program",
        ) from exc
    script.eval()
    for param in script.parameters():  # frozen like every other source's module (load_backbone's contract)
        param.requires_grad_(False)
    method = "forward" if options.feature_layer in (None, "pre_logits") else options.feature_layer
    attribute = getattr(script, method, None)
    # a submodule is callable too, but applying it to the raw image is not that layer's output in the model
    if method != "forward" and (not callable(attribute) or isinstance(attribute, nn.Module)):
        raise BackboneError(
            f"feature layer {method!r} is not a method of the TorchScript module {path}",
            "TorchScript exposes no submodule hooks; export a method returning that layer "
            "(@torch.jit.export) or leave the feature layer unset",
        )
    config, origin = _config(path, extra.get("meta.json"))
    extractor = ScriptExtractor(script, method)
    return _backbone(
        parsed, options, path, extractor, config, origin, "pre_logits" if method == "forward" else method
    )


@register_source(
    "export",
    forms=("export:PATH.pt2",),
    summary="a torch.export program (forward returns features, or (features, logits)); same .json sidecar",
)
def load_export(parsed: ParsedSpec, options: LoadOptions) -> Backbone:
    path = resolve_local_path(parsed.target, "exported program")
    if options.feature_layer not in (None, "pre_logits"):
        raise BackboneError(
            "an exported program has a fixed output; it cannot give another feature layer",
            "export a program that returns the layer you want, or leave the feature layer unset",
        )
    export_log = logging.getLogger("torch.export")
    level = export_log.level
    # torch logs the whole traceback of a failed load as warnings before raising; the error below says it once
    export_log.setLevel(logging.CRITICAL)
    try:
        program = torch.export.load(str(path))
    except Exception as exc:  # wrong format, truncated file, incompatible torch version
        raise BackboneError(
            f"{path} is not a torch.export program ({torch_load_reason(exc)})",
            "save it with torch.export.save(torch.export.export(model.eval(), (example,)), path)",
        ) from exc
    finally:
        export_log.setLevel(level)
    user_inputs = set(program.graph_signature.user_inputs)
    shapes = [
        node.meta["val"].shape
        for node in program.graph.nodes
        if node.op == "placeholder" and node.name in user_inputs and "val" in node.meta
    ]
    if len(shapes) != 1 or len(shapes[0]) != 4:
        raise BackboneError(
            f"{path} takes inputs {[tuple(s) for s in shapes]}, not one N×3×H×W image batch",
            "export the model with a single image-batch argument",
        )
    batch_dim = shapes[0][0]
    static_batch = int(batch_dim) if isinstance(batch_dim, int) else None
    outputs = program.graph_signature.user_outputs
    module = program.module().to(options.device)
    # the graph was traced in the mode the model was in (it must be eval); GraphModule.eval() is not allowed
    for param in module.parameters():
        param.requires_grad_(False)
    config, origin = _config(path, None)
    static_size = shapes[0][1:]
    if config_value(config, "input_size") is None and all(isinstance(d, int) for d in static_size):
        config = {**config, "input_size": list(static_size)}  # the program's own static C×H×W
    extractor = ExportExtractor(module, static_batch, returns_logits=len(outputs) > 1)
    return _backbone(parsed, options, path, extractor, config, origin, "pre_logits")
