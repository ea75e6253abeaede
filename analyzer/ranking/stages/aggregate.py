"""Aggregate stage: scored candidates -> the RankingResult (ranks, the mean-rank aggregate, agreement, baselines,
the bootstrap summary). Runs on the driver: it is arithmetic over a few numbers per candidate.
"""

from __future__ import annotations

import datetime as _dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from analyzer.contracts import Dataset
from analyzer.environment import environment_info
from analyzer.metric_record import aggregate_reason
from analyzer.ranking.plan import BASELINES, RankingError
from analyzer.ranking.stages.features import Extracted
from analyzer.ranking.statistics import (
    bootstrap_summary,
    finite_or_none,
    int_or_none,
    mean_ranks,
    nan_if_none,
    rank_values,
)
from analyzer.result import AGGREGATE, MIN_AGREEMENT_CANDIDATES, RankingResult

#: A metric "agrees" with a candidate's aggregate position when its rank is within this many places.
AGREE_TOLERANCE = 1


def dataset_summary(ds: Dataset) -> dict[str, Any]:
    """The report's ``dataset`` block of an opened Dataset."""
    return {
        "spec": str(ds.spec),
        "name": ds.name,
        "fingerprint": ds.fingerprint,
        "n_samples": len(ds),
        "n_classes": len(ds.class_names) if ds.class_names else len(np.unique(ds.labels)),
        "class_names": [str(c) for c in ds.class_names],
        "skipped": [list(s) for s in ds.skipped],
    }


def assemble_result(
    *,
    name: str,
    dataset: dict[str, Any],
    config: dict[str, Any],
    metric_entries: list[dict[str, Any]],
    candidates: list[dict[str, Any]],
    skipped: list[dict[str, Any]] | None = None,
    failed: list[dict[str, Any]] | None = None,
    boot_scores: Mapping[str, np.ndarray] | None = None,
    bootstrap_params: Mapping[str, Any] | None = None,
    spectrum: dict[str, Any] | None = None,
    environment: dict[str, Any] | None = None,
    timings: dict[str, Any] | None = None,
    created: str | None = None,
) -> RankingResult:
    """Rank scored candidates and compute everything derived from the scores.

    ``metric_entries``: the report's ``metrics`` list (``name``, ``params``, ``higher_is_better``, ``kind``,
    ``in_aggregate``) without the baselines, which are added here. ``candidates``: one dict per candidate with
    ``model``, ``scores`` {metric: raw score or None} and optional ``num_params``, ``source_accuracy``,
    ``feature_dim``, ``extraction_seconds``, ``feature_key``. ``boot_scores``: {aggregate metric:
    (n_resamples, n_candidates)} raw scores in ``candidates`` order, or None for no bootstrap.
    """
    if not candidates:
        raise RankingError(
            "no candidate could be scored", "check the `failed` list of the run and fix those candidates"
        )
    entries = [dict(m) for m in metric_entries if m["name"] not in BASELINES]
    for base in BASELINES:
        entries.append(
            {"name": base, "params": {}, "higher_is_better": True, "kind": "baseline", "in_aggregate": False}
        )
    hib = {m["name"]: bool(m["higher_is_better"]) for m in entries}
    agg_names = [m["name"] for m in entries if m.get("in_aggregate")]
    models = [c["model"] for c in candidates]
    scores = {c["model"]: dict(c.get("scores", {})) for c in candidates}
    for c in candidates:
        for base in BASELINES:
            scores[c["model"]][base] = finite_or_none(c.get(base))

    metric_ranks: dict[str, dict[str, int | None]] = {m: {} for m in models}
    for name_ in hib:
        values = [finite_or_none(scores[m].get(name_)) for m in models]
        for m, r in zip(models, rank_values(values, higher_is_better=hib[name_], method="min"), strict=True):
            metric_ranks[m][name_] = r

    table = np.array([[nan_if_none(scores[m].get(n)) for m in models] for n in agg_names]).reshape(
        len(agg_names), -1
    )
    agg = mean_ranks(table, [hib[n] for n in agg_names]) if agg_names else np.full(len(models), np.nan)
    agg_rank = rank_values(
        [None if not np.isfinite(a) else float(a) for a in agg], higher_is_better=False, method="min"
    )

    p_best: dict[str, float] = {}
    intervals: dict[str, list[int]] = {}
    bootstrap_block = None
    if boot_scores and agg_names:
        params: dict[str, Any] = dict(bootstrap_params or {})
        first_table = next(iter(boot_scores.values()))
        p_best, intervals, bootstrap_block = bootstrap_summary(
            models,
            {n: boot_scores[n] for n in agg_names if n in boot_scores},
            hib,
            n_resamples=int(params["n_resamples"]) if "n_resamples" in params else len(first_table),
            seed=int(params.get("seed", 0)),
            fraction=float(params.get("fraction", 0.8)),
        )

    rows = []
    for i, c in enumerate(candidates):
        m = c["model"]
        rank = agg_rank[i]
        agree: list[str] = []
        disagree: list[str] = []
        if rank is not None:
            for n, r in metric_ranks[m].items():
                if n in BASELINES or r is None:
                    continue
                (agree if abs(r - rank) <= AGREE_TOLERANCE else disagree).append(n)
        rows.append(
            {
                "model": m,
                "rank": rank,
                "aggregate_score": None if not np.isfinite(agg[i]) else float(agg[i]),
                "scores": {n: finite_or_none(scores[m].get(n)) for n in hib},
                "metric_ranks": metric_ranks[m],
                "num_params": int_or_none(c.get("num_params")),
                "source_accuracy": finite_or_none(c.get("source_accuracy")),
                "feature_dim": int_or_none(c.get("feature_dim")),
                "extraction_seconds": finite_or_none(c.get("extraction_seconds")),
                "feature_key": c.get("feature_key"),
                "p_best": p_best.get(m),
                "rank_interval": intervals.get(m),
                "agree": agree,
                "disagree": disagree,
            }
        )
    # Best first; unranked candidates (no aggregate metric scored) last; ties by name for a stable order.
    rows.sort(key=lambda r: (r["rank"] is None, r["rank"] or 0, r["model"]))

    agreement, baseline_agreement = _agreement(models, scores, hib, agg)
    return RankingResult(
        name=name,
        created=created or _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        dataset=dataset,
        config=config,
        metrics=entries,
        aggregate={
            "method": "mean_rank",
            "metrics": agg_names,
            "description": (
                f"mean of average ranks over {', '.join(agg_names) or 'no metric'} (lower is better); "
                "ties share the average rank; a missing score is left out of that candidate's mean. "
                f"Why these metrics: {aggregate_reason(agg_names)}"
            ),
        },
        ranking=rows,
        skipped=list(skipped or []),
        failed=list(failed or []),
        bootstrap=bootstrap_block,
        agreement=agreement,
        baseline_agreement=baseline_agreement,
        spectrum=dict(spectrum or {}),
        validation=None,
        environment=environment if environment is not None else environment_info(),
        timings=dict(timings or {}),
    )


def _agreement(
    models: Sequence[str],
    scores: Mapping[str, Mapping[str, Any]],
    hib: Mapping[str, bool],
    agg: np.ndarray,
) -> tuple[dict[str, Any], dict[str, dict[str, float | None]]]:
    """Kendall tau between every pair of metrics (and the aggregate), and of each metric with the baselines."""
    # scipy's tau-b directly: the agreement matrix needs no weighting, and ranking.py should not depend on a
    # metrics module for a textbook statistic.
    from scipy.stats import kendalltau

    oriented: dict[str, dict[str, float]] = {}
    for n, h in hib.items():
        oriented[n] = {
            m: (1 if h else -1) * float(scores[m][n])
            for m in models
            if scores[m].get(n) is not None and math.isfinite(float(scores[m][n]))
        }
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
    return {"metrics": names, "kendall_tau": matrix}, baseline


@dataclass(frozen=True)
class AggregateInput:
    """Everything the report is assembled from: the plan's metric entries, the candidates in the store, every
    score (``scores[metric][model]``), what was skipped or failed, the bootstrap tables and the spectra."""

    name: str
    dataset: Mapping[str, Any]
    config: Mapping[str, Any]
    metric_entries: Sequence[Mapping[str, Any]]
    candidates: Sequence[Extracted]
    scores: Mapping[str, Mapping[str, float | None]]
    skipped: Sequence[Mapping[str, Any]] = ()
    failed: Sequence[Mapping[str, Any]] = ()
    boot_tables: Mapping[str, np.ndarray] | None = None
    bootstrap_params: Mapping[str, Any] | None = None
    spectra: Mapping[str, Any] | None = None
    timings: Mapping[str, Any] | None = None


def run_aggregate(inp: AggregateInput) -> RankingResult:
    """The RankingResult of a run (no validation yet)."""
    return assemble_result(
        name=inp.name,
        dataset=dict(inp.dataset),
        config=dict(inp.config),
        metric_entries=[dict(e) for e in inp.metric_entries],
        candidates=[
            {
                "model": c.model,
                "scores": {metric: by_model.get(c.model) for metric, by_model in inp.scores.items()},
                "num_params": c.num_params,
                "source_accuracy": c.source_accuracy,
                "feature_dim": c.feature_dim,
                "extraction_seconds": c.extraction_seconds,
                "feature_key": c.feature_key,
            }
            for c in inp.candidates
        ],
        skipped=[dict(s) for s in inp.skipped],
        failed=[dict(f) for f in inp.failed],
        boot_scores=inp.boot_tables,
        bootstrap_params=inp.bootstrap_params,
        spectrum=dict(inp.spectra or {}),
        timings=dict(inp.timings or {}),
    )
