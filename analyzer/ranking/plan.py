"""The plan of a ranking: what the user asked for, checked before any work starts.

:meth:`RankingPlan.build` turns the arguments of :meth:`analyzer.ranking.Ranker.run` into a frozen plan (unique
candidate specs, known metric names, checked metric parameters, the aggregate, the bootstrap's size); every
mistake there raises :class:`RankingError` (or the metric's own ValueError for an unknown parameter) before a
single feature is extracted. The stages read the plan; none changes it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from analyzer.defaults import BASELINES, DEFAULT_AGGREGATE, DEFAULT_METRICS
from analyzer.errors import RankingError
from analyzer.limits import MAX_N_BOOTSTRAP, check_range
from analyzer.ranking.scale_free import rescales
from analyzer.report_types import MetricEntry

__all__ = ["BASELINES", "DEFAULT_AGGREGATE", "DEFAULT_METRICS", "RankingError", "RankingPlan"]


def metric_kind(name: str) -> str:
    """A registered metric's kind: ``"label"`` (scored from features and labels) or ``"data_free"`` (from the
    weights)."""
    import metrics

    return metrics.info(name).kind


def higher_is_better(name: str) -> bool:
    """A registered metric's declared direction."""
    import metrics

    return metrics.info(name).higher_is_better


def valid_metric_names() -> list[str]:
    """Every name ``--metrics`` accepts: the registered metrics, of every kind."""
    import metrics

    return metrics.available()


def check_metric_names(names: Sequence[str]) -> list[str]:
    """``names`` deduplicated in order; an unknown name raises RankingError listing the valid ones."""
    valid = valid_metric_names()
    unknown = [n for n in names if n not in valid and n not in BASELINES]
    if unknown:
        raise RankingError(
            f"unknown metric(s) {', '.join(map(repr, unknown))}",
            f"choose from: {', '.join(valid)} (baselines {', '.join(BASELINES)} are always reported)",
        )
    return [n for n in dict.fromkeys(names) if n not in BASELINES]


def default_metric_names() -> list[str]:
    """The metrics of a run that names none: :data:`DEFAULT_METRICS` plus every data-free metric (reported
    beside the aggregate)."""
    import metrics

    return [*DEFAULT_METRICS, *metrics.available(kind="data_free")]


@dataclass(frozen=True)
class RankingPlan:
    """A checked ranking request.

    Attributes:
        specs: candidate model specs, unique, in the user's order.
        metrics: every metric to report, in order (baselines are added by the aggregate stage).
        aggregate: the metrics averaged into the aggregate rank (a subset of ``metrics``).
        params: {metric: its keyword parameters} (``random_state`` defaulted to ``seed`` for stochastic ones).
        seed: the run's seed (bootstrap resamples, stochastic metrics).
        n_bootstrap: resamples of the bootstrap (0 = none); bootstrap_fraction: share of each class per resample.
    """

    specs: tuple[str, ...]
    metrics: tuple[str, ...]
    aggregate: tuple[str, ...]
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seed: int = 0
    n_bootstrap: int = 200
    bootstrap_fraction: float = 0.8

    @property
    def label_metrics(self) -> tuple[str, ...]:
        """The requested metrics scored from features and labels."""
        return tuple(n for n in self.metrics if metric_kind(n) == "label")

    @property
    def data_free_metrics(self) -> tuple[str, ...]:
        """The requested metrics computed from the weights."""
        return tuple(n for n in self.metrics if metric_kind(n) == "data_free")

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

    @classmethod
    def build(
        cls,
        candidates: Sequence[str],
        metrics: Sequence[str] | None = None,
        *,
        aggregate: Sequence[str] | None = None,
        metric_params: Mapping[str, Mapping[str, Any]] | None = None,
        seed: int = 0,
        n_bootstrap: int = 200,
        bootstrap_fraction: float = 0.8,
    ) -> RankingPlan:
        """Check the arguments of :meth:`Ranker.run` and return the plan; a mistake raises before any work."""
        import metrics as metrics_lib
        from metrics._registry import split_params

        specs = tuple(dict.fromkeys(str(c).strip() for c in candidates if str(c).strip()))
        if not specs:
            raise RankingError("no candidate models given", "pass at least one model spec")
        names = check_metric_names(list(metrics) if metrics is not None else default_metric_names())
        label = [n for n in names if metric_kind(n) == "label"]
        if aggregate is None:  # every label metric asked for, except the headline ones kept beside (TMI, PED)
            beside = set(DEFAULT_METRICS) - set(DEFAULT_AGGREGATE)
            agg_names = [n for n in label if n not in beside] or label or names
        else:
            agg_names = check_metric_names(list(aggregate))
            missing = [n for n in agg_names if n not in names]
            if missing:
                raise RankingError(
                    f"aggregate metric(s) {', '.join(missing)} are not among the requested metrics",
                    f"add them to --metrics or choose the aggregate from {', '.join(names)}",
                )
        # one bound for every command (analyzer.limits); checked before any work
        check_range(n_bootstrap, flag="--n-bootstrap", low=0, high=MAX_N_BOOTSTRAP, what="0 = no bootstrap")
        if n_bootstrap < 0 or not 0.0 < bootstrap_fraction <= 1.0:
            raise RankingError(
                f"bad bootstrap options (n_bootstrap={n_bootstrap}, fraction={bootstrap_fraction})",
                "use n_bootstrap >= 0 (0 = no bootstrap) and a fraction in (0, 1]",
            )
        params = {n: dict((metric_params or {}).get(n, {})) for n in names}
        for n in names:
            info = metrics_lib.info(n)
            try:
                split_params(info, params[n])  # an unknown parameter fails before any work
            except ValueError as exc:
                raise RankingError(
                    str(exc), f"give {n} only the parameters this message lists as valid"
                ) from exc
            if info.stochastic and "random_state" in info.params:
                params[n].setdefault("random_state", seed)
        return cls(
            specs=specs,
            metrics=tuple(names),
            aggregate=tuple(agg_names),
            params=params,
            seed=seed,
            n_bootstrap=int(n_bootstrap),
            bootstrap_fraction=float(bootstrap_fraction),
        )

    def config(self, *, data: str, batch_size: int) -> dict[str, Any]:
        """The report's ``config`` block of a run started from Python (the CLI passes its own)."""
        return {
            "data": data,
            "models": list(self.specs),
            "metrics": list(self.metrics),
            "aggregate": list(self.aggregate),
            "seed": self.seed,
            "n_bootstrap": self.n_bootstrap,
            "bootstrap_fraction": self.bootstrap_fraction,
            "batch_size": batch_size,
            "metric_params": {n: dict(p) for n, p in self.params.items()},
        }
