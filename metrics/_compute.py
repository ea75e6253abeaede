"""The public entry points' implementations (:func:`compute`, :func:`pool_terms`, :func:`finalize_pool`,
:func:`compute_pool`, :func:`compute_data_free`), in a module of their own so that :mod:`metrics._resample`
uses them without importing the package that re-exports it (no import cycle)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from metrics._registry import MetricInfo, info, split_params
from metrics._validation import NotApplicable


def _inputs_for(metric: MetricInfo, optional: dict[str, Any]) -> dict[str, Any]:
    for name in metric.requires:
        if optional.get(name) is None:
            raise NotApplicable(
                f"metric {metric.name!r} needs {name}= (e.g. the source classifier's softmax "
                "probabilities, N x Cs); pass it, or choose a metric that does not need it"
            )
    return {name: optional[name] for name in metric.uses if optional.get(name) is not None}


def compute(
    name: str,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    source_probs: np.ndarray | None = None,
    reference_features: np.ndarray | None = None,
    **params: Any,
) -> float:
    """Score one backbone: ``features`` (N x D) against ``labels`` (N,) class labels of any hashable
    kind, or (N x K) float regression targets. Higher is more transferable.

    ``source_probs`` (N x Cs) and ``reference_features`` (M x D) are accepted for every metric and
    forwarded only to metrics that use them. ``params`` are the metric's own keyword parameters
    (see ``metrics.info(name).params``).
    """
    metric = info(name)
    _check_label_kind(metric)
    if metric.pool_level:
        return compute_pool(
            name,
            [features],
            labels,
            source_probs=source_probs,
            reference_features=reference_features,
            **params,
        )[0]
    extra = _inputs_for(metric, {"source_probs": source_probs, "reference_features": reference_features})
    return float(metric.func(features, labels, **extra, **split_params(metric, params)))


def _check_label_kind(metric: MetricInfo) -> None:
    if metric.kind != "label":
        raise ValueError(
            f"metric {metric.name!r} is {metric.kind}: it scores {', '.join(metric.requires)}, not features; "
            "use metrics.compute_data_free()"
        )


def compute_data_free(name: str, inputs: Mapping[str, Sequence[float] | np.ndarray]) -> float:
    """Score a data-free metric from its per-layer input columns, e.g. ``compute_data_free("alpha", {"alpha":
    [...], "log_spectral_norm": [...]})`` (the columns of the weight spectrum; other columns are ignored)."""
    import inspect

    metric = info(name)
    if metric.kind != "data_free":
        raise ValueError(f"metric {name!r} scores features; use metrics.compute()")
    wanted = list(inspect.signature(metric.func).parameters)
    missing = [col for col in wanted if col not in inputs]
    if missing:
        raise ValueError(f"metric {name!r} needs the per-layer column(s) {', '.join(missing)}")
    return float(metric.func(**{col: np.asarray(inputs[col], dtype=float) for col in wanted}))


def pool_terms(
    name: str,
    features: np.ndarray,
    labels: np.ndarray,
    *,
    source_probs: np.ndarray | None = None,
    reference_features: np.ndarray | None = None,
    **params: Any,
) -> dict[str, float]:
    """Raw per-candidate terms of a pool-level metric (cacheable; combine with :func:`finalize_pool`)."""
    metric = info(name)
    if not metric.pool_level:
        raise ValueError(f"metric {name!r} is not pool-level; use metrics.compute()")
    extra = _inputs_for(metric, {"source_probs": source_probs, "reference_features": reference_features})
    return dict(metric.func(features, labels, **extra, **split_params(metric, params)))


def finalize_pool(name: str, terms: Sequence[dict[str, float]]) -> list[float]:
    """Turn the pool's per-candidate terms into one comparable score per candidate."""
    metric = info(name)
    if not metric.pool_level or metric.finalize is None:
        raise ValueError(f"metric {name!r} is not pool-level; use metrics.compute()")
    return [float(v) for v in metric.finalize(list(terms))]


def compute_pool(
    name: str,
    features_list: Sequence[np.ndarray],
    labels: np.ndarray,
    *,
    source_probs: Sequence[np.ndarray | None] | np.ndarray | None = None,
    reference_features: np.ndarray | None = None,
    **params: Any,
) -> list[float]:
    """Score a pool of candidates on the same labels: one score per entry of ``features_list``.

    Pool-level metrics (NCTI) normalise across the pool; every other metric scores each candidate
    in turn. ``source_probs`` may be one array per candidate (a list) or None.
    """
    if len(features_list) == 0:
        raise ValueError("compute_pool needs at least one candidate's features")
    if source_probs is None or isinstance(source_probs, np.ndarray):
        per_candidate_probs = [source_probs] * len(features_list)
    else:
        per_candidate_probs = list(source_probs)
        if len(per_candidate_probs) != len(features_list):
            raise ValueError(
                f"source_probs has {len(per_candidate_probs)} entries for {len(features_list)} candidates; "
                "give one array (or None) per candidate"
            )
    metric = info(name)
    if not metric.pool_level:
        return [
            compute(name, f, labels, source_probs=p, reference_features=reference_features, **params)
            for f, p in zip(features_list, per_candidate_probs, strict=True)
        ]
    terms = [
        pool_terms(name, f, labels, source_probs=p, reference_features=reference_features, **params)
        for f, p in zip(features_list, per_candidate_probs, strict=True)
    ]
    return finalize_pool(name, terms)
