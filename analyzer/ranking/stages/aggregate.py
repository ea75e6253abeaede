"""Aggregate stage: scored candidates -> the RankingResult (ranks, the mean-rank aggregate, agreement, baselines,
the bootstrap summary). Runs on the driver: it is arithmetic over a few numbers per candidate.

The stages hand it typed values (:class:`AggregateInput`: the features stage's :class:`Extracted` candidates,
the scores per metric, :class:`analyzer.report_types.Skipped` / ``Failed`` entries, the spectra, the bootstrap's
tables and :class:`BootstrapRun`), and it builds the frozen :class:`analyzer.result.RankingResult` once; only
the validation stage makes a new one from it (with the ``validation`` block).
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from analyzer.contracts import Dataset
from analyzer.defaults import BASELINES
from analyzer.environment import environment_info
from analyzer.errors import RankingError
from analyzer.metric_record import aggregate_reason
from analyzer.ranking.stages.cost import CostChoice, with_costs
from analyzer.ranking.stages.features import Extracted
from analyzer.ranking.statistics import (
    bootstrap_summary,
    finite_or_none,
    int_or_none,
    mean_ranks,
    nan_if_none,
    rank_values,
)
from analyzer.report_types import (
    AGGREGATE,
    BASELINE_KIND,
    MIN_AGREEMENT_CANDIDATES,
    AggregateInfo,
    Agreement,
    Bootstrap,
    DatasetInfo,
    Failed,
    MetricEntry,
    ModelSpectrum,
    RankingRow,
    Skipped,
)
from analyzer.result import RankingResult

#: A metric "agrees" with a candidate's aggregate position when its rank is within this many places.
AGREE_TOLERANCE = 1
#: {model: {metric or baseline: raw score or None}}.
ScoreTable = dict[str, dict[str, float | None]]


def dataset_summary(ds: Dataset) -> DatasetInfo:
    """The report's ``dataset`` block of an opened Dataset."""
    return DatasetInfo(
        spec=str(ds.spec),
        name=ds.name,
        fingerprint=ds.fingerprint,
        n_samples=len(ds),
        n_classes=len(ds.class_names) if ds.class_names else len(np.unique(ds.labels)),
        class_names=[str(c) for c in ds.class_names],
        skipped=[[str(i), str(reason)] for i, reason in ds.skipped],
    )


@dataclass(frozen=True)
class BootstrapRun:
    """How the bootstrap ran: ``n_resamples`` used, ``seed``, ``fraction``; with early stopping, ``n_requested``
    (asked for) and ``stopping`` (the rule), which the report's bootstrap block then states."""

    n_resamples: int
    seed: int = 0
    fraction: float = 0.8
    n_requested: int | None = None
    stopping: str | None = None


@dataclass(frozen=True)
class AggregateInput:
    """Everything the report is assembled from: the plan's metric entries (baselines are added here), the
    candidates in the store, every score (``scores[metric][model]``), what was skipped or failed, the bootstrap
    tables ({aggregate metric: (n_resamples, n_candidates)} raw scores in ``candidates`` order, or None) and the
    spectra. ``environment`` None: this machine's; ``created`` None: now."""

    name: str
    dataset: DatasetInfo
    config: Mapping[str, Any]
    metric_entries: Sequence[MetricEntry]
    candidates: Sequence[Extracted]
    scores: Mapping[str, Mapping[str, float | None]]
    skipped: Sequence[Skipped] = ()
    failed: Sequence[Failed] = ()
    boot_tables: Mapping[str, np.ndarray] | None = None
    bootstrap: BootstrapRun | None = None
    spectra: Mapping[str, ModelSpectrum] = field(default_factory=dict)
    timings: Mapping[str, float | None] = field(default_factory=dict)
    environment: Mapping[str, Any] | None = None
    created: str | None = None
    #: The measured costs, the budget and the Pareto axis (None: the report has no cost fields).
    costs: CostChoice | None = None


def run_aggregate(inp: AggregateInput) -> RankingResult:
    """The RankingResult of a run (no validation yet): ranks per metric, the aggregate mean rank, the bootstrap's
    P(best) and rank intervals, which metrics agree with each position, and Kendall's tau between the metrics."""
    if not inp.candidates:
        raise RankingError(
            "no candidate could be scored", "check the `failed` list of the run and fix those candidates"
        )
    entries = _metric_entries(inp.metric_entries)
    hib = {m.name: m.higher_is_better for m in entries}
    agg_names = [m.name for m in entries if m.in_aggregate]
    models = [c.model for c in inp.candidates]
    scores = _score_table(inp)
    table = np.array([[nan_if_none(scores[m].get(n)) for m in models] for n in agg_names]).reshape(
        len(agg_names), -1
    )
    agg = mean_ranks(table, [hib[n] for n in agg_names]) if agg_names else np.full(len(models), np.nan)
    rows, bootstrap = _rows(inp, scores, hib, agg, agg_names)
    agreement, baseline_agreement = _agreement(models, scores, hib, agg)
    result = RankingResult(
        name=inp.name,
        created=inp.created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        dataset=inp.dataset,
        config=dict(inp.config),
        metrics=entries,
        aggregate=AggregateInfo(
            method="mean_rank",
            metrics=agg_names,
            description=(
                f"mean of average ranks over {', '.join(agg_names) or 'no metric'} (lower is better); "
                "ties share the average rank; a missing score is left out of that candidate's mean. "
                f"Why these metrics: {aggregate_reason(agg_names)}"
            ),
        ),
        ranking=rows,
        skipped=list(inp.skipped),
        failed=list(inp.failed),
        bootstrap=bootstrap,
        agreement=agreement,
        baseline_agreement=baseline_agreement,
        spectrum=dict(inp.spectra),
        validation=None,
        environment=dict(inp.environment) if inp.environment is not None else environment_info(),
        timings=dict(inp.timings),
    )
    return result if inp.costs is None else with_costs(result, inp.costs)


def _metric_entries(entries: Sequence[MetricEntry]) -> list[MetricEntry]:
    """The plan's entries, then the baselines (never in the aggregate)."""
    out = [m for m in entries if m.name not in BASELINES]
    return [*out, *(MetricEntry(name=b, kind=BASELINE_KIND, in_aggregate=False) for b in BASELINES)]


def _score_table(inp: AggregateInput) -> ScoreTable:
    """Every candidate's scores, the baselines (parameter count, source accuracy) among them."""
    table: ScoreTable = {}
    for c in inp.candidates:
        table[c.model] = {metric: by_model.get(c.model) for metric, by_model in inp.scores.items()}
        table[c.model]["num_params"] = finite_or_none(c.num_params)
        table[c.model]["source_accuracy"] = finite_or_none(c.source_accuracy)
    return table


def _rows(
    inp: AggregateInput, scores: ScoreTable, hib: Mapping[str, bool], agg: np.ndarray, agg_names: list[str]
) -> tuple[list[RankingRow], Bootstrap | None]:
    """The ranking rows, best first (unranked last, ties by name), and the bootstrap block."""
    models = [c.model for c in inp.candidates]
    metric_ranks: dict[str, dict[str, int | None]] = {m: {} for m in models}
    for name in hib:
        values = [finite_or_none(scores[m].get(name)) for m in models]
        for m, r in zip(models, rank_values(values, higher_is_better=hib[name], method="min"), strict=True):
            metric_ranks[m][name] = r
    agg_rank = rank_values(
        [None if not np.isfinite(a) else float(a) for a in agg], higher_is_better=False, method="min"
    )
    p_best, intervals, bootstrap = _bootstrap(inp, hib, agg_names)
    rows = []
    for i, c in enumerate(inp.candidates):
        rank = agg_rank[i]
        close = {
            n: abs(r - rank) <= AGREE_TOLERANCE
            for n, r in metric_ranks[c.model].items()
            if rank is not None and n not in BASELINES and r is not None
        }
        interval = intervals.get(c.model)
        rows.append(
            RankingRow(
                model=c.model,
                rank=rank,
                aggregate_score=None if not np.isfinite(agg[i]) else float(agg[i]),
                scores={n: finite_or_none(scores[c.model].get(n)) for n in hib},
                metric_ranks=metric_ranks[c.model],
                num_params=int_or_none(c.num_params),
                source_accuracy=finite_or_none(c.source_accuracy),
                feature_dim=int_or_none(c.feature_dim),
                extraction_seconds=finite_or_none(c.extraction_seconds),
                feature_key=c.feature_key,
                p_best=p_best.get(c.model),
                rank_interval=None if interval is None else (int(interval[0]), int(interval[1])),
                agree=[n for n, ok in close.items() if ok],
                disagree=[n for n, ok in close.items() if not ok],
            )
        )
    rows.sort(key=lambda r: (r.rank is None, r.rank or 0, r.model))
    return rows, bootstrap


def _bootstrap(
    inp: AggregateInput, hib: Mapping[str, bool], agg_names: list[str]
) -> tuple[dict[str, float], dict[str, list[int]], Bootstrap | None]:
    """P(best), 95 % rank intervals and the report's bootstrap block; empty without bootstrap tables."""
    if not inp.boot_tables or not agg_names:
        return {}, {}, None
    run = inp.bootstrap or BootstrapRun(n_resamples=len(next(iter(inp.boot_tables.values()))))
    p_best, intervals, block = bootstrap_summary(
        [c.model for c in inp.candidates],
        {n: inp.boot_tables[n] for n in agg_names if n in inp.boot_tables},
        hib,
        n_resamples=run.n_resamples,
        seed=run.seed,
        fraction=run.fraction,
    )
    summary = Bootstrap(
        n_resamples=int(block["n_resamples"]),
        seed=int(block["seed"]),
        fraction=float(block["fraction"]),
        method=str(block["method"]),
        tied_top=list(block["tied_top"]),
        statement=str(block["statement"]),
        n_requested=run.n_requested,
        stopping=run.stopping,
    )
    return p_best, intervals, summary


def _agreement(
    models: Sequence[str],
    scores: ScoreTable,
    hib: Mapping[str, bool],
    agg: np.ndarray,
) -> tuple[Agreement, dict[str, dict[str, float | None]]]:
    """Kendall tau between every pair of metrics (and the aggregate), and of each metric with the baselines."""
    # scipy's tau-b directly: the agreement matrix needs no weighting, and ranking.py should not depend on a
    # metrics module for a textbook statistic.
    from scipy.stats import kendalltau

    oriented: dict[str, dict[str, float]] = {}
    for n, h in hib.items():
        oriented[n] = {}
        for m in models:
            value = scores[m].get(n)
            if value is not None and math.isfinite(float(value)):
                oriented[n][m] = (1 if h else -1) * float(value)
    oriented[AGGREGATE] = {m: -float(a) for m, a in zip(models, agg, strict=True) if np.isfinite(a)}
    names = [n for n in hib if n not in BASELINES] + [AGGREGATE, *BASELINES]

    def tau(a: str, b: str) -> float | None:
        common = [m for m in models if m in oriented[a] and m in oriented[b]]
        if len(common) < MIN_AGREEMENT_CANDIDATES:
            return None
        x = np.array([oriented[a][m] for m in common])
        y = np.array([oriented[b][m] for m in common])
        if np.ptp(x) == 0 or np.ptp(y) == 0:
            return None  # a constant ranking has no order to agree with
        value = float(kendalltau(x, y).statistic)
        return value if math.isfinite(value) else None

    matrix = [[1.0 if a == b else tau(a, b) for b in names] for a in names]
    baseline = {n: {b: tau(n, b) for b in BASELINES} for n in names if n not in BASELINES}
    return Agreement(metrics=names, kendall_tau=matrix), baseline
