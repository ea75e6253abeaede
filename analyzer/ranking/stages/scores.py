"""Scores stage: one task per (label metric, candidate), cached per (feature entry, metric, params).

A task loads its candidate's entry from the feature store, computes the score (a pool-level metric's raw terms)
and writes it to the score records before returning it, so an interrupted run keeps every finished score. Pool
metrics (NCTI) are finalised on the driver across the candidates that have terms. A metric that cannot apply
to a candidate (:class:`metrics.NotApplicable`) is listed in ``skipped`` with the reason; any other exception is
a bug, listed in ``failed`` with the metric and its traceback summary (the run then exits 3).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.contracts import FeatureEntry
from analyzer.executors import Executor, Task, TaskOutcome
from analyzer.ranking.progress import SCORES, ProgressEvent, stage_clock
from analyzer.ranking.scale_free import PREP_VERSION, checked_entry, scoring_features
from analyzer.ranking.stages.features import Extracted
from analyzer.ranking.statistics import finite_or_none
from analyzer.records import RecordCache
from analyzer.report_types import Failed, Skipped


def params_key(metric: str, params: Mapping[str, Any]) -> str:
    """The record name of a metric with its parameters (``"<metric>-<hash>"``; the hash also covers what the
    metric is handed, :data:`analyzer.ranking.scale_free.PREP_VERSION`)."""
    text = json.dumps(
        {"metric": metric, "params": dict(params), "prep": PREP_VERSION}, sort_keys=True, default=str
    )
    return f"{metric}-{hashlib.sha256(text.encode()).hexdigest()[:12]}"


def score_records(cache_dir: str | os.PathLike[str], feature_key: str) -> RecordCache:
    """The score records of one feature entry. The key already pins the dataset, the weights and the
    preprocessing, so a record is reused exactly when nothing it depends on changed."""
    from analyzer.paths import CacheLayout

    return RecordCache(CacheLayout(cache_dir).scores / feature_key)


def load_entry(cache_dir: str, feature_key: str) -> FeatureEntry:
    """The store entry ``feature_key`` (its arrays load lazily). Not memoised across tasks on purpose: an entry
    object holds a reader lease, and one kept alive after the run would make `cache rm` skip that entry."""
    from analyzer.store import FeatureStore

    entry = FeatureStore(cache_dir).get(feature_key)
    if entry is None:
        raise RuntimeError(f"feature store entry {feature_key} vanished under {cache_dir} during the run")
    return entry


def compute_on(
    metric: str, params: Mapping[str, Any], entry: FeatureEntry, idx: np.ndarray | None, *, pool: bool
) -> Any:
    """``metric`` on ``entry``'s features (rows ``idx``, or all; rescaled on the full set first where the metric
    depends on the scale, :mod:`analyzer.ranking.scale_free`): a float, or a pool metric's raw terms."""
    import metrics as metrics_lib

    feats, labels, probs = scoring_features(metric, entry.features), entry.labels, entry.source_probs
    if idx is not None:
        feats, labels = feats[idx], labels[idx]
        probs = None if probs is None else probs[idx]
    fn = metrics_lib.pool_terms if pool else metrics_lib.compute
    return fn(metric, feats, labels, source_probs=probs, **params)


@dataclass(frozen=True)
class ScoreValue:
    """A task's result: the score (or pool terms); or ``reason``, why the metric cannot apply to this candidate
    (:data:`metrics.INAPPLICABLE`: skipped); or ``error``, what else it raised (a bug: a failure in the report)."""

    value: Any = None
    reason: str | None = None
    error: str | None = None


def bug_summary(exc: BaseException, frames: int = 3) -> str:
    """``Type: message`` and the last ``frames`` frames of its traceback (file:line in function), one line."""
    import traceback

    where = "; ".join(
        f"{Path(f.filename).name}:{f.lineno} in {f.name}"
        for f in traceback.extract_tb(exc.__traceback__)[-frames:]
    )
    return f"{type(exc).__name__}: {exc} (a bug in the metric; last frames: {where})"


def score_one(cache_dir: str, feature_key: str, metric: str, params: Mapping[str, Any]) -> ScoreValue:
    """The task: score one candidate's store entry with one metric and record the result."""
    import metrics as metrics_lib

    entry = load_entry(cache_dir, feature_key)
    degenerate = checked_entry(score_records(cache_dir, feature_key), entry)
    if degenerate is not None:  # never scored, so never ranked above a candidate with real features
        return ScoreValue(reason=f"{metric} not scored: {degenerate}")
    try:
        value = compute_on(metric, params, entry, None, pool=metrics_lib.info(metric).pool_level)
    except metrics_lib.INAPPLICABLE as exc:
        return ScoreValue(reason=f"{metric} failed: {exc}")
    except Exception as exc:  # noqa: BLE001 - any other exception is a bug, reported with where it happened
        return ScoreValue(error=f"{metric} failed: {bug_summary(exc)}")
    score_records(cache_dir, feature_key).put(params_key(metric, params), value)
    return ScoreValue(value=value)


@dataclass(frozen=True)
class ScoresInput:
    """The candidates in the store, the label metrics to score and their parameters."""

    cache_dir: Path
    candidates: tuple[Extracted, ...]
    metrics: tuple[str, ...]
    params: Mapping[str, Mapping[str, Any]]


@dataclass(frozen=True)
class ScoresOutput:
    """``scores[metric][model]``: the final score (None when skipped or failed); ``skipped``: the metrics that cannot
    apply; ``failed``: the metrics that raised anything else on a candidate (bugs, with their traceback summary)."""

    scores: Mapping[str, Mapping[str, float | None]]
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)
    failed: tuple[Failed, ...] = field(default_factory=tuple)


def run_scores(inp: ScoresInput, executor: Executor, emit: Callable[[ProgressEvent], None]) -> ScoresOutput:
    """Score every (metric, candidate); cached scores are read on the driver and run no task."""
    import metrics as metrics_lib

    cache = str(inp.cache_dir)
    inapplicable: dict[str, list[Skipped]] = {m: [] for m in inp.metrics}
    terms: dict[str, dict[str, Any]] = {m: {} for m in inp.metrics}
    tasks: list[Task] = []
    for metric in inp.metrics:
        info = metrics_lib.info(metric)
        key = params_key(metric, inp.params[metric])
        for c in inp.candidates:
            reason = info.why_not_applicable(
                available_inputs=["source_probs"] if c.has_source_probs else [], regression=False
            )
            if reason:
                inapplicable[metric].append(Skipped(model=c.model, metric=metric, reason=reason))
                continue
            cached = score_records(cache, c.feature_key).get(key)
            if cached is not None:
                terms[metric][c.model] = cached
                continue
            tasks.append(
                Task(
                    "scores",
                    c.model,
                    score_one,
                    (cache, c.feature_key, metric, dict(inp.params[metric])),
                    label=metric,
                )
            )
    total = len(inp.metrics) * len(inp.candidates)
    already = total - len(tasks)

    clock = stage_clock()

    def on_done(outcome: TaskOutcome, done: int, _total: int) -> None:
        metric, model = outcome.task.label, outcome.task.model
        message = f"[rank] {metric}: {model}"
        emit(ProgressEvent(SCORES, model, message, already + done, total, outcome.node, metric, clock()))

    failed_here: dict[str, list[Skipped]] = {m: [] for m in inp.metrics}
    bugs: list[Failed] = []
    for outcome in executor.run(tasks, on_done=on_done):
        metric, model = outcome.task.label, outcome.task.model
        if outcome.error is not None:  # not a metric failure: a bug or a lost worker, never a silent skip
            raise RuntimeError(f"scoring {metric} on {model} failed on {outcome.node}: {outcome.error}")
        if outcome.value.error is not None:
            bugs.append(Failed(model=model, error=outcome.value.error, metric=metric))
        elif outcome.value.reason is not None:
            failed_here[metric].append(Skipped(model=model, metric=metric, reason=outcome.value.reason))
        else:
            terms[metric][model] = outcome.value.value

    scores: dict[str, dict[str, float | None]] = {}
    skipped: list[Skipped] = []
    for metric in inp.metrics:
        skipped += inapplicable[metric] + failed_here[metric]
        scores[metric] = finalise(metric, [c.model for c in inp.candidates], terms[metric])
    return ScoresOutput(scores, tuple(skipped), tuple(bugs))


def finalise(metric: str, models: list[str], terms: Mapping[str, Any]) -> dict[str, float | None]:
    """Final scores of ``models`` from their task results (pool metrics normalised over those that have terms)."""
    import metrics as metrics_lib

    have = [m for m in models if m in terms]
    if metrics_lib.info(metric).pool_level:
        values = metrics_lib.finalize_pool(metric, [terms[m] for m in have]) if have else []
        final = dict(zip(have, values, strict=True))
    else:
        final = {m: terms[m] for m in have}
    return {m: finite_or_none(final[m]) if m in final else None for m in models}
