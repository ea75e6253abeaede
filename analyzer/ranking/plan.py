"""The plan of a ranking: a checked :class:`~analyzer.request.RankRequest` with its defaults resolved.

:meth:`RankingPlan.of` checks nothing (the request did, as it was built); it fills in what the request leaves to
the defaults: the metrics (the headline ones and the data-free ones), the aggregate (every label metric asked for
but TMI and PED), each metric's parameters (``random_state`` defaulted to the seed for stochastic metrics). The
stages read the plan; none changes it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from analyzer.errors import RankingError
from analyzer.ranking.scale_free import rescales
from analyzer.report_types import MetricEntry
from analyzer.request import (
    BASELINES,
    DEFAULT_AGGREGATE,
    DEFAULT_METRICS,
    RankRequest,
    check_metric_names,
    default_metric_names,
    metric_kind,
    valid_metric_names,
)

__all__ = [
    "BASELINES",
    "DEFAULT_AGGREGATE",
    "DEFAULT_METRICS",
    "RankingError",
    "RankingPlan",
    "check_metric_names",
    "default_metric_names",
    "higher_is_better",
    "metric_kind",
    "valid_metric_names",
]


def higher_is_better(name: str) -> bool:
    """A registered metric's declared direction."""
    import metrics

    return metrics.info(name).higher_is_better


@dataclass(frozen=True)
class RankingPlan:
    """A checked ranking request, resolved.

    Attributes:
        request: what was asked (every setting of the run: device, batch size, timeouts, ...).
        specs: candidate model specs, unique, in the user's order.
        metrics: every metric to report, in order (baselines are added by the aggregate stage).
        aggregate: the metrics averaged into the aggregate rank (a subset of ``metrics``).
        params: {metric: its keyword parameters} (``random_state`` defaulted to ``seed`` for stochastic ones).
    """

    request: RankRequest
    specs: tuple[str, ...]
    metrics: tuple[str, ...]
    aggregate: tuple[str, ...]
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @classmethod
    def of(cls, request: RankRequest) -> RankingPlan:
        """The plan of ``request`` (already checked: nothing here can fail)."""
        return cls(
            request=request,
            specs=request.models,
            metrics=request.metric_names,
            aggregate=request.aggregate_names,
            params=request.params(),
        )

    @property
    def seed(self) -> int:
        """The run's seed (bootstrap resamples, stochastic metrics)."""
        return self.request.seed

    @property
    def n_bootstrap(self) -> int:
        """Resamples of the bootstrap (0 = none)."""
        return self.request.n_bootstrap

    @property
    def bootstrap_fraction(self) -> float:
        """Share of each class per resample, in [0.1, 1)."""
        return float(self.request.bootstrap_fraction)

    @property
    def label_metrics(self) -> tuple[str, ...]:
        """The requested metrics scored from features and labels."""
        return tuple(n for n in self.metrics if metric_kind(n) == "label")

    @property
    def data_free_metrics(self) -> tuple[str, ...]:
        """The requested metrics computed from the weights."""
        return tuple(n for n in self.metrics if metric_kind(n) == "data_free")

    @property
    def spectrum_first(self) -> bool:
        """True when the weight spectrum must finish before the bootstrap (a data-free metric is in the
        aggregate, or there is none to compute); else it runs beside the bootstrap."""
        return not self.data_free_metrics or bool(set(self.data_free_metrics) & set(self.aggregate))

    def metric_entries(self) -> list[MetricEntry]:
        """The report's ``metrics`` list (the baselines are added by the aggregate stage)."""
        return [
            MetricEntry(
                name=n,
                params=dict(self.params[n]),
                higher_is_better=higher_is_better(n),
                kind=metric_kind(n),
                in_aggregate=n in self.aggregate,
                # scored on features divided by the candidate's RMS deviation (analyzer.ranking.scale_free)
                rescaled=rescales(n),
            )
            for n in self.metrics
        ]

    def config(self, *, data: str) -> dict[str, Any]:
        """The report's ``config`` block of a run started from Python with specs (``rank`` and the dashboard
        record the whole request, :meth:`RankRequest.to_dict`)."""
        return {
            "data": data,
            "models": list(self.specs),
            "metrics": list(self.metrics),
            "aggregate": list(self.aggregate),
            "seed": self.seed,
            "n_bootstrap": self.n_bootstrap,
            "bootstrap_fraction": self.bootstrap_fraction,
            "batch_size": self.request.batch_size,
            "metric_params": {n: dict(p) for n, p in self.params.items()},
        }
