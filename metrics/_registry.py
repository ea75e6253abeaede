"""The metric registry: one decorator, one metadata record per metric.

A metric module registers a pure function ``f(features, labels, **params) -> float`` with
:func:`register_metric`. Pool-level metrics (scores normalised across the candidates, such as NCTI)
register a per-candidate *terms* function and a *finalize* function with :func:`register_pool_metric`.
Data-free metrics (computed from a backbone's weights, not from features, such as weightwatcher's alpha)
register a function of per-layer arrays with :func:`register_data_free_metric`.

Everything callers need to decide whether a metric applies (extra inputs, regression support,
stochasticity) lives in :class:`MetricInfo`, so the ranking layer can skip a metric and say why.
"""

from __future__ import annotations

import fnmatch
import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

#: Invariance properties a metric may declare; ``tests/metrics/test_common.py`` checks each one
#: over every metric that declares it.
PROPERTIES = frozenset({"sample_order", "label_renaming", "feature_scale", "unmodified"})

#: Optional inputs ``compute`` accepts for every metric and forwards only to metrics that use them.
OPTIONAL_INPUTS = ("source_probs", "reference_features")

#: Kinds of metric: "label" metrics score a candidate's features against the target labels; "data_free" ones
#: score its weights (their input is named in ``requires``, e.g. ``"weight_spectrum"``).
KINDS = ("label", "data_free")


@dataclass(frozen=True)
class MetricInfo:
    """What a metric is, what it needs, and how to read its value.

    Attributes:
        name: registry name, e.g. ``"logme"``.
        label: the column header views show (default: the name; alpha's is "weighted alpha").
        func: per-candidate scorer ``f(features, labels, **params) -> float``; for a pool-level
            metric, the terms function ``f(features, labels, **params) -> dict[str, float]``.
        summary: one line for listings (the demo's metric cards).
        explanation: what it measures, a sentence for the reports' and dashboard's "how to read" cards (default:
            the summary).
        direction: which way is better, and the range (e.g. "higher = more transferable; in [0, 1].").
        needs: its inputs, in words (features, labels, source_probs, the weights).
        higher_is_better: the score's direction. Always True for label metrics: their scores are oriented
            so that higher means more transferable (a paper's sign is flipped in the metric itself where
            needed). A data-free metric declares the direction of the quantity it reports (alpha: False).
        kind: ``"label"`` or ``"data_free"`` (see :data:`KINDS`).
        requires: extra inputs that must be given, e.g. ``("source_probs",)`` for LEEP, ``("weight_spectrum",)``
            for a data-free metric of the weights' spectrum.
        uses: optional inputs used when given (``"reference_features"`` for PED).
        supports_classification / supports_regression: target kinds the metric accepts.
        pool_level: True when scores are only comparable after :attr:`finalize` over a pool.
        finalize: pool step ``finalize(list_of_terms) -> list[float]``.
        stochastic: True when the value depends on ``random_state``.
        properties: the invariances the metric guarantees (subset of :data:`PROPERTIES`).
        params: the metric's own keyword parameters and their defaults.
        reads_features: False for metrics computed from ``source_probs`` and labels alone (LEEP, NCE): their
            ``features`` are checked for shape only, so NaN or inf there does not change (or block) the score.
    """

    name: str
    func: Callable[..., Any]
    summary: str = ""
    label: str = ""
    explanation: str = ""
    direction: str = ""
    needs: str = ""
    higher_is_better: bool = True
    kind: str = "label"
    requires: tuple[str, ...] = ()
    uses: tuple[str, ...] = ()
    supports_classification: bool = True
    supports_regression: bool = False
    pool_level: bool = False
    finalize: Callable[[list[dict[str, float]]], list[float]] | None = None
    stochastic: bool = False
    properties: frozenset[str] = field(default_factory=lambda: PROPERTIES)
    params: Mapping[str, Any] = field(default_factory=dict)
    reads_features: bool = True

    def why_not_applicable(
        self, *, available_inputs: Sequence[str] = (), regression: bool = False
    ) -> str | None:
        """Return the reason this metric cannot run with these inputs, or None when it can."""
        missing = [name for name in self.requires if name not in available_inputs]
        if missing and self.kind == "data_free":
            return f"{self.name} needs {', '.join(missing)} of the backbone's weights"
        if missing:
            return f"{self.name} needs {', '.join(missing)} (a backbone with a source classifier head)"
        if regression and not self.supports_regression:
            return f"{self.name} supports classification labels only, not regression targets"
        if not regression and not self.supports_classification:
            return f"{self.name} supports regression targets only"
        return None


_REGISTRY: dict[str, MetricInfo] = {}

_OWN_ARGS = {"features", "labels", *OPTIONAL_INPUTS}


def _keyword_params(func: Callable[..., Any]) -> dict[str, Any]:
    params = {}
    for p in inspect.signature(func).parameters.values():
        if p.name in _OWN_ARGS or p.kind in (p.VAR_KEYWORD, p.VAR_POSITIONAL):
            continue
        params[p.name] = None if p.default is inspect.Parameter.empty else p.default
    return params


def _uses(func: Callable[..., Any]) -> tuple[str, ...]:
    names = inspect.signature(func).parameters
    return tuple(name for name in OPTIONAL_INPUTS if name in names)


def register_metric(
    name: str,
    *,
    summary: str,
    direction: str,
    needs: str,
    label: str = "",
    explanation: str = "",
    requires: tuple[str, ...] = (),
    supports_classification: bool = True,
    supports_regression: bool = False,
    stochastic: bool = False,
    properties: frozenset[str] | set[str] = PROPERTIES,
    reads_features: bool = True,
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Decorator registering a per-candidate metric under ``name``.

    The function's keyword parameters become the metric's parameters; a parameter named
    ``source_probs`` or ``reference_features`` marks that optional input as used.
    """

    def decorate(func: Callable[..., float]) -> Callable[..., float]:
        _add(
            MetricInfo(
                name=name,
                func=func,
                summary=summary,
                label=label or name,
                explanation=explanation or summary,
                direction=direction,
                needs=needs,
                requires=tuple(requires),
                uses=_uses(func),
                supports_classification=supports_classification,
                supports_regression=supports_regression,
                stochastic=stochastic,
                properties=frozenset(properties),
                params=_keyword_params(func),
                reads_features=reads_features,
            )
        )
        return func

    return decorate


def register_pool_metric(
    name: str,
    *,
    finalize: Callable[[list[dict[str, float]]], list[float]],
    summary: str,
    direction: str,
    needs: str,
    label: str = "",
    explanation: str = "",
    properties: frozenset[str] | set[str] = PROPERTIES,
    stochastic: bool = False,
) -> Callable[[Callable[..., dict[str, float]]], Callable[..., dict[str, float]]]:
    """Decorator registering a pool-level metric: the decorated function returns raw terms per
    candidate; ``finalize`` turns the pool's terms into one comparable score per candidate."""

    def decorate(func: Callable[..., dict[str, float]]) -> Callable[..., dict[str, float]]:
        _add(
            MetricInfo(
                name=name,
                func=func,
                summary=summary,
                label=label or name,
                explanation=explanation or summary,
                direction=direction,
                needs=needs,
                uses=_uses(func),
                pool_level=True,
                finalize=finalize,
                stochastic=stochastic,
                properties=frozenset(properties),
                params=_keyword_params(func),
            )
        )
        return func

    return decorate


def register_data_free_metric(
    name: str,
    *,
    requires: tuple[str, ...],
    higher_is_better: bool,
    summary: str,
    direction: str,
    needs: str,
    label: str = "",
    explanation: str = "",
) -> Callable[[Callable[..., float]], Callable[..., float]]:
    """Decorator registering a data-free metric: a pure function of per-layer arrays of the input named in
    ``requires`` (e.g. ``f(alpha, log_spectral_norm) -> float`` over the columns of ``"weight_spectrum"``).

    Its direction is declared here, as the quantity's own (lower alpha is better trained, so
    ``higher_is_better=False``); it declares none of the feature invariances (it never sees features).
    """

    def decorate(func: Callable[..., float]) -> Callable[..., float]:
        _add(
            MetricInfo(
                name=name,
                func=func,
                summary=summary,
                label=label or name,
                explanation=explanation or summary,
                direction=direction,
                needs=needs,
                higher_is_better=higher_is_better,
                kind="data_free",
                requires=tuple(requires),
                supports_classification=True,
                supports_regression=True,
                properties=frozenset(),
                params={},
                reads_features=False,
            )
        )
        return func

    return decorate


def _add(info: MetricInfo) -> None:
    unknown = set(info.properties) - PROPERTIES
    if unknown:
        raise ValueError(f"metric {info.name!r} declares unknown properties {sorted(unknown)}")
    missing = [f for f in ("summary", "direction", "needs") if not getattr(info, f)]
    if missing:
        raise ValueError(f"metric {info.name!r} declares no {', '.join(missing)} (views show them)")
    if info.kind not in KINDS:
        raise ValueError(
            f"metric {info.name!r} has unknown kind {info.kind!r}; use one of {', '.join(KINDS)}"
        )
    if info.name in _REGISTRY and _REGISTRY[info.name].func is not info.func:
        raise ValueError(f"a metric named {info.name!r} is already registered")
    _REGISTRY[info.name] = info


#: Fast resampled scorers by metric name (see :mod:`metrics._resample`): ``f(features, labels, subsets, **params)
#: -> list`` giving, for every index set in ``subsets``, what the metric (or, for a pool metric, its terms function)
#: returns on ``features[idx], labels[idx]``, or None where that raises ValueError / LinAlgError. A resampler may
#: return None as a whole to decline (the caller then scores each subset in turn).
Resampler = Callable[..., list[Any] | None]
_RESAMPLERS: dict[str, Resampler] = {}


def register_resampler(name: str) -> Callable[[Resampler], Resampler]:
    """Decorator registering a fast path that scores many subsets of one candidate's samples at once.

    It must return, to rounding, what calling the metric once per subset returns (kNN: exactly); the metric
    itself must already be registered under ``name``.
    """

    def decorate(func: Resampler) -> Resampler:
        info(name)  # a resampler for an unknown metric is a programming error
        if name in _RESAMPLERS and _RESAMPLERS[name] is not func:
            raise ValueError(f"a resampler for {name!r} is already registered")
        _RESAMPLERS[name] = func
        return func

    return decorate


def resampler(name: str) -> Resampler | None:
    """The fast resampled scorer registered for ``name``, or None (callers then score each subset in turn)."""
    info(name)
    return _RESAMPLERS.get(name)


def available(pattern: str = "*", *, kind: str | None = None) -> list[str]:
    """Sorted names of the registered metrics matching a glob ``pattern`` (and of ``kind``, when given).

    >>> "logme" in available()
    True
    >>> available("h*")
    ['hscore']
    >>> available(kind="data_free")
    ['alpha']
    """
    return sorted(
        name
        for name, info in _REGISTRY.items()
        if fnmatch.fnmatchcase(name, pattern) and (kind is None or info.kind == kind)
    )


def info(name: str) -> MetricInfo:
    """The :class:`MetricInfo` of ``name``; an unknown name lists the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown metric {name!r}; available metrics: {', '.join(available())}") from None


def split_params(metric: MetricInfo, params: Mapping[str, Any]) -> dict[str, Any]:
    """Check ``params`` against the metric's own parameters; an unknown one names the valid ones."""
    unknown = sorted(set(params) - set(metric.params))
    if unknown:
        valid = ", ".join(sorted(metric.params)) or "none"
        raise ValueError(
            f"metric {metric.name!r} has no parameter {', '.join(map(repr, unknown))}; valid parameters: {valid}"
        )
    return dict(params)
