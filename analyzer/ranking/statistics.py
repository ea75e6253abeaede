"""The ranking's arithmetic: ranks with ties, the mean-rank aggregate, stratified resamples, the bootstrap summary.

Pure functions over arrays (no I/O); the stages and :func:`analyzer.ranking.stages.aggregate.assemble_result`
use them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from analyzer.confidence import (
    NOT_RULED_OUT,
    TIED,
    confidence_statement,
    tie_state,
)
from analyzer.naming import short_names

#: Scores closer than this share of the largest score's magnitude rank as ties (:func:`snap_near_ties`): 1e-5 is
#: far above float32 rounding (scaled copies of one backbone differ by 5e-7 at most) and far below the printed
#: third decimal.
NEAR_TIE = 1e-5


def rank_values(
    values: Sequence[float | None], *, higher_is_better: bool = True, method: str = "average"
) -> list[Any]:
    """Ranks (1 = best) of ``values``; None/NaN stays None. ``method`` as ``scipy.stats.rankdata``.

    Returns a list of float ranks (``"average"``) or ints (``"min"``) aligned with ``values``.
    """
    present = [i for i, v in enumerate(values) if v is not None and math.isfinite(float(v))]
    out: list[Any] = [None] * len(values)
    if not present:
        return out
    oriented = np.array([float(values[i]) for i in present])  # type: ignore[arg-type]
    oriented = -oriented if higher_is_better else oriented
    ranks = rankdata(snap_near_ties(oriented), method=method)
    for i, r in zip(present, ranks, strict=True):
        out[i] = int(r) if method == "min" else float(r)
    return out


def snap_near_ties(values: np.ndarray, relative: float = NEAR_TIE) -> np.ndarray:
    """``values`` with every run of sorted neighbours at most ``relative`` × max|values| apart set to the run's
    smallest value, so they rank as ties.

    Scores that differ only by float rounding (the same backbone with its features scaled by a constant, or
    summed in another order by another BLAS kernel) then share a rank instead of being ordered by noise.
    """
    if values.size < 2:
        return values
    tolerance = relative * float(np.max(np.abs(values)))
    order = np.argsort(values, kind="stable")
    snapped = values.copy()
    for previous, current in zip(order[:-1], order[1:], strict=True):
        if values[current] - values[previous] <= tolerance:
            snapped[current] = snapped[previous]
    return snapped


def mean_ranks(score_table: np.ndarray, higher_is_better: Sequence[bool]) -> np.ndarray:
    """Aggregate score per candidate: mean over metrics of average ranks (lower is better).

    ``score_table`` is (n_metrics, n_candidates) raw scores, NaN where missing; a candidate with no score
    at all gets NaN.
    """
    ranks = np.full(score_table.shape, np.nan)
    for i, (row, hib) in enumerate(zip(score_table, higher_is_better, strict=True)):
        r = rank_values([None if not np.isfinite(v) else float(v) for v in row], higher_is_better=hib)
        ranks[i] = [np.nan if v is None else v for v in r]
    with np.errstate(invalid="ignore"):
        counts = np.sum(np.isfinite(ranks), axis=0)
        sums = np.nansum(ranks, axis=0)
    return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def stratified_subsamples(labels: np.ndarray, n: int, fraction: float, seed: int) -> list[np.ndarray]:
    """``n`` index sets, each ``fraction`` of every class drawn without replacement (sorted), seeded."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels)
    classes = [np.flatnonzero(labels == c) for c in np.unique(labels)]
    out = []
    for _ in range(n):
        picks = [
            rng.choice(idx, size=max(2, round(fraction * len(idx))), replace=False) if len(idx) > 2 else idx
            for idx in classes
        ]
        out.append(np.sort(np.concatenate(picks)))
    return out


def bootstrap_summary(
    models: Sequence[str],
    boot_scores: Mapping[str, np.ndarray],
    higher_is_better: Mapping[str, bool],
    *,
    n_resamples: int,
    seed: int,
    fraction: float,
) -> tuple[dict[str, float], dict[str, list[int]], dict[str, Any]]:
    """p_best, 95 % rank intervals and the tie statement (:func:`tie_state`'s rule) from bootstrap scores.

    ``boot_scores`` maps each aggregate metric to a (n_resamples, n_candidates) array of raw scores (NaN where
    missing). Returns ({model: p_best}, {model: [lo, hi]}, the report's ``bootstrap`` block).
    """
    names = list(boot_scores)
    n = len(models)
    best_counts = np.zeros(n)
    rank_samples = np.zeros((n_resamples, n))
    for b in range(n_resamples):
        table = np.vstack([boot_scores[m][b] for m in names])
        agg = mean_ranks(table, [higher_is_better[m] for m in names])
        agg = np.where(np.isfinite(agg), agg, np.inf)
        best = np.flatnonzero(agg == agg.min())
        best_counts[best] += 1.0 / len(best)  # a tie for first splits the win
        rank_samples[b] = rankdata(agg, method="min")
    p_best = {m: float(best_counts[i] / n_resamples) for i, m in enumerate(models)}
    intervals = {
        m: [
            int(np.floor(np.percentile(rank_samples[:, i], 2.5))),
            int(np.ceil(np.percentile(rank_samples[:, i], 97.5))),
        ]
        for i, m in enumerate(models)
    }
    order = sorted(models, key=lambda m: -p_best[m])
    states = {m: tie_state(p_best[m], n_resamples) for m in order[1:]}
    tied = [order[0], *(m for m in order[1:] if states[m] == TIED)]
    open_ = [m for m in order[1:] if states[m] == NOT_RULED_OUT]
    display = short_names(models)  # the statement is read beside tables that use the same short names
    statement = confidence_statement(p_best, tied, open_, display, n_resamples)
    block = {
        "n_resamples": n_resamples,
        "seed": seed,
        "fraction": fraction,
        "method": "stratified subsampling without replacement",
        "tied_top": tied,
        "not_ruled_out": open_,
        "statement": statement,
    }
    return p_best, intervals, block


def finite_or_none(value: Any) -> float | None:
    """``float(value)``, or None for None, NaN and infinities (the report's "missing")."""
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def nan_if_none(value: Any) -> float:
    return np.nan if value is None else float(value)
