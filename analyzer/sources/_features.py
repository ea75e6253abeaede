"""Feature capture shared by the adapters: pooling, forward hooks on a named layer, freezing, the probe pass."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import nn

from analyzer.errors import BackboneError
from analyzer.sources._weights import brief

# ---------------------------------------------------------------------------------------------- features


def pool_features(tensor: torch.Tensor) -> torch.Tensor:
    """``N×D`` from a layer output: global average over space (``N×C×H×W``) or tokens (``N×T×C``)."""
    if tensor.ndim == 4:
        return tensor.mean(dim=(2, 3))
    if tensor.ndim == 3:
        return tensor.mean(dim=1)
    return tensor.flatten(1)


def first_tensor(output: Any) -> torch.Tensor:
    """The tensor in a layer's output (tuples, lists, dicts and HF ``ModelOutput`` take their first tensor)."""
    if torch.is_tensor(output):
        return output
    values = output.values() if isinstance(output, Mapping) else output
    if isinstance(values, tuple | list) or isinstance(output, Mapping):
        for value in values:
            if torch.is_tensor(value):
                return value
    to_tuple = getattr(output, "to_tuple", None)
    if callable(to_tuple):
        return first_tensor(to_tuple())
    raise TypeError(f"layer output of type {type(output).__name__} holds no tensor")


class _StopForward(Exception):
    """Raised by a capture hook to skip the rest of the forward pass once the wanted layer has run."""


class HookExtractor(nn.Module):
    """Features from a named submodule of ``model``: its input (``mode="input"``, the classifier head) or its
    output (``mode="output"``, an intermediate block), global-average-pooled to ``N×D``.

    ``logits(output)`` maps the full model's output to source logits, or is None when the model has no head.
    ``forward`` stops the pass at the captured layer when logits are not wanted; ``forward_both`` runs the
    model once and returns features and logits together.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str,
        *,
        mode: str,
        logits: Callable[[Any], torch.Tensor] | None,
    ) -> None:
        super().__init__()
        self.model = model
        self.layer = layer
        self.mode = mode
        self._logits = logits
        self._captured: torch.Tensor | None = None
        self._stop = False
        target = model.get_submodule(layer)
        if mode == "input":
            target.register_forward_pre_hook(self._capture_input)
        else:
            target.register_forward_hook(self._capture_output)

    def _capture_input(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        self._captured = first_tensor(args)
        if self._stop:
            raise _StopForward

    def _capture_output(self, _module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
        self._captured = first_tensor(output)
        if self._stop:
            raise _StopForward

    def _run(self, batch: torch.Tensor, stop: bool) -> tuple[Any, torch.Tensor]:
        """``(the model's output or None when stopped early, the captured layer's tensor)``."""
        self._captured, self._stop = None, stop
        try:
            output = self.model(batch)
        except _StopForward:
            output = None
        finally:
            self._stop = False
        captured, self._captured = self._captured, None
        if captured is None:
            raise RuntimeError(f"layer {self.layer!r} did not run in the forward pass")
        return output, captured

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        _, captured = self._run(batch, stop=True)
        return pool_features(captured)

    def forward_both(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        output, captured = self._run(batch, stop=False)
        return pool_features(captured), (self._logits(output) if self._logits is not None else None)

    def classify(self, batch: torch.Tensor) -> torch.Tensor:
        if self._logits is None:
            raise RuntimeError("this backbone has no classifier head")
        output, _ = self._run(batch, stop=False)
        return self._logits(output)


def unknown_layer_error(layer: str, model: nn.Module, spec: str, extra: str = "") -> BackboneError:
    """A feature layer that is not a submodule: suggest close module names, else the top-level blocks."""
    import difflib

    names = [name for name, _ in model.named_modules() if name]
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    choices = close or [name for name, _ in model.named_children()][:12]
    return BackboneError(
        f"feature layer {layer!r} is not a module of {spec}",
        f"name a submodule (dotted path), e.g. {', '.join(choices)}{extra}",
    )


def count_params(module: nn.Module) -> int:
    """Number of distinct parameter elements (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for param in module.parameters():
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    return total


def freeze(module: nn.Module, device: torch.device) -> nn.Module:
    """Eval mode, no gradients, on ``device``."""
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    return module.to(device)


def forward_error(exc: BaseException) -> str:
    """What a model's forward said: for a TorchScript module, the exception its code raised (the interpreter wraps
    it in "The following operation failed in the TorchScript interpreter. Traceback ...", whose first sentence
    dropped the user's text), else the library's first sentence (:func:`brief`)."""
    text = str(exc)
    if "TorchScript interpreter" in text:
        lines = [line.strip() for line in text.splitlines() if line.strip()]
        if lines:
            return lines[-1][:300]
    return brief(exc, 300)


def probe(
    extractor: nn.Module, input_size: tuple[int, int, int], device: torch.device, spec: str
) -> tuple[int, int | None]:
    """Run a 2-image batch through ``extractor``: ``(feature_dim, num_source_classes or None)``.

    Fails at load time, with the spec in the message, rather than half-way through an extraction.
    """
    batch = torch.zeros((2, *input_size), device=device)
    both = getattr(extractor, "forward_both", None)
    try:
        with torch.inference_mode():
            features, logits = both(batch) if callable(both) else (extractor(batch), None)
    except Exception as exc:  # any failure of user-supplied models is a load error
        said = forward_error(exc)
        shape_words = ("size", "shape", "dimension", "mat1", "channels", "expected input")
        raise BackboneError(
            f"{spec} fails on a 2×{input_size[0]}×{input_size[1]}×{input_size[2]} batch ({said})",
            "check the input size (the sidecar's input_size, or extract's --image-size) matches what the model "
            "accepts, and the feature layer"
            if any(word in said.lower() for word in shape_words)
            else "the model's own forward raised this on a batch of zeros: fix the model's code (its message is "
            "above), then run again",
        ) from exc
    if features.ndim != 2 or features.shape[0] != 2:
        raise BackboneError(
            f"{spec} returns features of shape {tuple(features.shape)} for a batch of 2, not N×D",
            "the module's forward must return one feature vector per image",
        )
    if logits is not None and (logits.ndim != 2 or logits.shape[0] != 2):
        raise BackboneError(
            f"{spec} returns source logits of shape {tuple(logits.shape)} for a batch of 2, not N×C",
            "the classify output must be one logit vector per image",
        )
    return int(features.shape[1]), (int(logits.shape[1]) if logits is not None else None)
