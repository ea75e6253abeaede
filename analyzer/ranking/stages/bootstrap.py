"""Bootstrap stage: the aggregate metrics re-scored on ``n`` stratified resamples of the target samples.

One task per (label metric, candidate) scores that candidate on every resample at once (:func:`resample_one`,
through :func:`metrics.compute_resampled`, which reuses one neighbour search or Gram across resamples; the
resamples are drawn in the task from the entry's labels with the run's seed, so every task, wherever it runs,
sees the same index sets) and records the list. Pool metrics are finalised per resample on the driver. A
data-free metric in the aggregate does not depend on the samples: its score is repeated in every resample.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.executors import Executor, Task, TaskOutcome
from analyzer.ranking import stopping
from analyzer.ranking.plan import RankingError, metric_kind
from analyzer.ranking.progress import BOOTSTRAP, ProgressEvent, stage_clock
from analyzer.ranking.scale_free import scoring_features
from analyzer.ranking.stages.features import Extracted
from analyzer.ranking.stages.scores import load_entry, params_key, score_records
from analyzer.ranking.statistics import nan_if_none, stratified_subsamples


def resample_key(
    metric: str,
    params: Mapping[str, Any],
    n: int,
    seed: int,
    fraction: float,
    span: tuple[int, int] | None = None,
) -> str:
    """The record name of a metric's bootstrap scores (of resamples ``span`` = (start, stop) of the n, when
    early stopping scores them in rounds)."""
    key = f"{params_key(metric, params)}-boot{n}-s{seed}-f{fraction:g}"
    return key if span is None or span == (0, n) else f"{key}-r{span[0]}-{span[1]}"


def resample_one(
    cache_dir: str,
    feature_key: str,
    metric: str,
    params: Mapping[str, Any],
    n: int,
    fraction: float,
    seed: int,
    span: tuple[int, int] | None = None,
) -> list[Any]:
    """The task: ``metric`` on one candidate's features over each of the ``n`` resamples, or those in ``span``
    (None where it fails), recorded before it is returned."""
    import metrics as metrics_lib

    entry = load_entry(cache_dir, feature_key)
    start, stop = span or (0, n)
    subsets = stratified_subsamples(entry.labels, n, fraction, seed)[start:stop]  # a full run's index sets
    # the metric's fast path where it has one (one neighbour search, one Gram for all resamples); the same values
    # as scoring each resample in turn, to rounding (metrics/_resample.py)
    score = (
        metrics_lib.resampled_pool_terms
        if metrics_lib.info(metric).pool_level
        else metrics_lib.compute_resampled
    )
    # rescaled on the full set, as the scores stage does, before the resamples take their rows
    features = scoring_features(metric, entry.features)
    values: list[Any] = score(
        metric, features, entry.labels, subsets, source_probs=entry.source_probs, **params
    )
    score_records(cache_dir, feature_key).put(resample_key(metric, params, n, seed, fraction, span), values)
    return values


@dataclass(frozen=True)
class BootstrapInput:
    """The scored candidates, the aggregate metrics, their full-sample scores and the resampling plan.

    ``scores[metric][model]``: the full-sample score (None: skipped there, so no bootstrap either).
    """

    cache_dir: Path
    candidates: tuple[Extracted, ...]
    metrics: tuple[str, ...]
    params: Mapping[str, Mapping[str, Any]]
    scores: Mapping[str, Mapping[str, float | None]]
    n: int
    fraction: float
    seed: int
    early_stop: bool = False


@dataclass(frozen=True)
class BootstrapOutput:
    """``tables[metric]``: (n, n_candidates) raw scores in candidate order, NaN where missing; None = no bootstrap
    (n = 0, fewer than two candidates, or no label metric in the aggregate)."""

    tables: Mapping[str, np.ndarray] | None
    n_used: int | None = None


def run_bootstrap(
    inp: BootstrapInput, executor: Executor, emit: Callable[[ProgressEvent], None]
) -> BootstrapOutput:
    """Re-score the aggregate metrics on the resamples; cached resample lists run no task."""
    import metrics as metrics_lib

    label = [m for m in inp.metrics if metric_kind(m) == "label"]
    if not inp.n or not label or len(inp.candidates) < 2:
        return BootstrapOutput(None)
    first = inp.candidates[0]
    for c in inp.candidates:
        scored = any(inp.scores[m].get(c.model) is not None for m in label)
        if scored and c.samples_digest != first.samples_digest:
            raise RankingError(
                f"{c.model}'s features cover different samples than {first.model}'s",
                "clear the stale entries with `python -m analyzer cache rm` and run again",
            )
    models = [c.model for c in inp.candidates]
    _check_memory(inp, len(label))
    lists: dict[str, dict[str, list[Any]]] = {m: {} for m in label}
    spans = stopping.rounds(inp.n, inp.early_stop)
    used = inp.n
    for span in spans:
        _score_span(inp, label, span, lists, emit, executor)
        if inp.early_stop and span[1] < inp.n:
            hib = {m: metrics_lib.info(m).higher_is_better for m in inp.metrics}
            if stopping.settled(_tables(inp, label, models, lists, span[1]), hib, span[1]):
                used = span[1]
                break
    return BootstrapOutput(_tables(inp, label, models, lists, used), used)


def _check_memory(inp: BootstrapInput, n_metrics: int) -> None:
    """Refuse (exit 2, with the estimate) a bootstrap this machine cannot hold, before any resample is drawn."""
    from analyzer.limits import check_bootstrap_memory
    from analyzer.store import FeatureStore
    from analyzer.store.integrity import read_meta

    meta, _ = read_meta(FeatureStore(inp.cache_dir, create=False).entry_path(inp.candidates[0].feature_key))
    if meta is not None:
        n_samples = int(meta.get("n_samples") or 0)
        check_bootstrap_memory(inp.n, n_samples, inp.fraction, len(inp.candidates), n_metrics)


def _score_span(
    inp: BootstrapInput,
    label: list[str],
    span: tuple[int, int],
    lists: dict[str, dict[str, list[Any]]],
    emit: Callable[[ProgressEvent], None],
    executor: Executor,
) -> None:
    """Score resamples ``span`` of every (label metric, candidate), appending to ``lists``; recorded spans run no
    task."""
    cache = str(inp.cache_dir)
    keys = {m: resample_key(m, inp.params[m], inp.n, inp.seed, inp.fraction, span) for m in label}
    tasks: list[Task] = []
    # candidate by candidate, each candidate's metrics together: units that run at once are then mostly different
    # metrics, whose heavy steps differ (SFDA's products beside LogME's and NCTI's factorisations) and contend less
    # for memory bandwidth and the interpreter than two units of one metric (measured: 6 % less wall time)
    for c in inp.candidates:
        for metric in label:
            if inp.scores[metric].get(c.model) is None:
                continue  # skipped or failed on the full set: no bootstrap either
            cached = score_records(cache, c.feature_key).get(keys[metric])
            if cached is not None:
                lists[metric].setdefault(c.model, []).extend(cached)
                continue
            args = (
                cache,
                c.feature_key,
                metric,
                dict(inp.params[metric]),
                inp.n,
                inp.fraction,
                inp.seed,
                span,
            )
            # one thread each, wherever it runs: its values never depend on the executor, and the executor can run
            # one unit per CPU (the resamples' matrices are small: one thread per unit uses the cores better)
            tasks.append(Task("bootstrap", c.model, resample_one, args, label=metric, threads=1))
    total = len(label) * len(inp.candidates)
    already = total - len(tasks)
    count = span[1] - span[0]
    unit = f"{span[0] + 1}-{span[1]}"  # one progress bar per round of resamples
    clock = stage_clock()

    def on_done(outcome: TaskOutcome, done: int, _total: int) -> None:
        metric, model = outcome.task.label, outcome.task.model
        message = f"[rank] bootstrap {metric} x{count}: {model}"
        emit(ProgressEvent(BOOTSTRAP, model, message, already + done, total, outcome.node, unit, clock()))

    for outcome in executor.run(tasks, on_done=on_done):
        if outcome.error is not None:
            raise RuntimeError(
                f"bootstrap {outcome.task.label} on {outcome.task.model} failed on {outcome.node}: {outcome.error}"
            )
        lists[outcome.task.label].setdefault(outcome.task.model, []).extend(outcome.value)


def _tables(
    inp: BootstrapInput, label: list[str], models: list[str], lists: dict[str, dict[str, list[Any]]], n: int
) -> dict[str, np.ndarray]:
    """Every aggregate metric's (n, candidates) table over the first ``n`` resamples."""
    import metrics as metrics_lib

    tables: dict[str, np.ndarray] = {}
    for metric in label:
        pool = metrics_lib.info(metric).pool_level
        tables[metric] = resample_table(metric, models, lists[metric], n, pool=pool)
    for metric in inp.metrics:
        if metric_kind(metric) != "label":  # no dependence on the samples: the same score in every resample
            tables[metric] = np.tile([nan_if_none(inp.scores[metric].get(m)) for m in models], (n, 1))
    return tables


def resample_table(
    metric: str, models: list[str], lists: Mapping[str, list[Any]], n: int, *, pool: bool
) -> np.ndarray:
    """(n, len(models)) scores from each candidate's per-resample list (pool metrics finalised per resample)."""
    import metrics as metrics_lib

    table = np.full((n, len(models)), np.nan)
    for b in range(n):
        have = [i for i, m in enumerate(models) if m in lists and lists[m][b] is not None]
        if pool:
            if have:
                table[b, have] = metrics_lib.finalize_pool(metric, [lists[models[i]][b] for i in have])
        else:
            for i in have:
                table[b, i] = float(lists[models[i]][b])
    return table
