"""The one build path every source adapter ends in: probe the extractor once, then the :class:`Backbone`.

An adapter parses nothing here and loads nothing: it hands over the frozen extractor, the preprocessing and what
identifies the weights (:class:`Weights`); :func:`build_backbone` runs the 2-image probe (a load error names the
spec, rather than failing half-way through an extraction) and fills the fields every source fills the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from analyzer.sources._features import count_params, probe
from analyzer.sources.base import Backbone, LoadOptions, ParsedSpec, Preprocess

#: ``(feature_dim, num_source_classes or None) -> None``: an adapter's check of what the probe found; raises
#: BackboneError (e.g. a sidecar that declares another feature size).
ProbeCheck = Callable[[int, int | None], None]


@dataclass(frozen=True)
class Weights:
    """What identifies a candidate's weights: ``weights_id`` (a content hash or hub revision; part of the
    feature-store key), the local file if there is one, the source-task top-1 in [0, 1] when known, and JSON-able
    ``info`` for the store's meta and the reports."""

    weights_id: str
    path: str | None = None
    source_accuracy: float | None = None
    info: dict[str, Any] = field(default_factory=dict)


def build_backbone(
    parsed: ParsedSpec,
    options: LoadOptions,
    extractor: nn.Module,
    preprocess: Preprocess,
    weights: Weights,
    *,
    feature_layer: str,
    counted: nn.Module | None = None,
    classify: Callable[[torch.Tensor], torch.Tensor] | None = None,
    check: ProbeCheck | None = None,
) -> Backbone:
    """The :class:`Backbone` of a loaded, frozen ``extractor`` (``N×3×H×W`` -> ``N×D`` features).

    Before the probe, an extractor with a ``check_one_pass(input_size, device)`` method decides whether its
    logits can come from the same forward pass as its features. ``counted``: the module whose parameters are
    counted (default: the extractor). ``classify``: the source-logits callable (default: the extractor's
    ``classify``), kept only when the probe found logits. With ``options.probe`` False (the weights alone are
    wanted) nothing runs: no feature size, no source classes, no ``classify``.
    """
    feature_dim: int | None = None
    num_classes: int | None = None
    if options.probe:
        check_one_pass = getattr(extractor, "check_one_pass", None)
        if callable(check_one_pass):
            check_one_pass(preprocess.input_size, options.device)
        feature_dim, num_classes = probe(extractor, preprocess.input_size, options.device, parsed.spec)
        if check is not None:
            check(feature_dim, num_classes)
    logits = classify if classify is not None else getattr(extractor, "classify", None)
    return Backbone(
        spec=parsed.spec,
        module=extractor,
        classify=logits if num_classes is not None else None,
        preprocess=preprocess,
        weights_id=weights.weights_id,
        num_params=count_params(counted if counted is not None else extractor),
        source_accuracy=weights.source_accuracy,
        feature_layer=feature_layer,
        weights_path=weights.path,
        feature_dim=feature_dim,
        num_source_classes=num_classes,
        info=weights.info,
    )
