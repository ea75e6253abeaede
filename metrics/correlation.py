"""Ranking-agreement statistics: how well a metric's scores rank candidates by their true accuracy.

Used by the validation step (``RankingResult.validation``) to compare a transferability metric's scores with the
accuracies the candidates really reach after fine-tuning. This module registers no metric.

Conventions for every function here:

- ``scores`` and ``truth`` are 1-D sequences of the same length, one entry per candidate (backbone); higher is
  better in both.
- NaN-safe: a candidate whose score *or* truth is missing (NaN / None) is dropped before computing. When fewer than
  2 candidates are left, every statistic is undefined and the function returns NaN (never raises), so a report can
  show "n/a" for a metric that could not score the pool.
- A shape mismatch is a caller error and raises ``ValueError`` naming the fix.

``weighted_tau`` is exactly ``scipy.stats.weightedtau(scores, truth)`` with its defaults (rank by the values
themselves, hyperbolic weigher 1/(r+1), additive), the statistic the transferability papers report.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.stats

__all__ = [
    "kendall_tau",
    "pearson",
    "ranking_agreement",
    "spearman",
    "top1_regret",
    "top_k_recall",
    "weighted_tau",
]

ArrayLike = Sequence[float | None] | np.ndarray


def _paired(scores: ArrayLike, truth: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Return the finite pairs as two float64 arrays, dropping candidates with a missing value."""
    raw_scores, raw_truth = np.asarray(scores, dtype=object), np.asarray(truth, dtype=object)
    s = np.asarray([np.nan if v is None else v for v in raw_scores.ravel()], dtype=float)
    t = np.asarray([np.nan if v is None else v for v in raw_truth.ravel()], dtype=float)
    if raw_scores.ndim > 1 or raw_truth.ndim > 1:
        raise ValueError("scores and truth must be 1-D (one value per candidate); flatten them first")
    if s.shape != t.shape:
        raise ValueError(
            f"scores has {s.size} entries but truth has {t.size}; give one score and one true accuracy per "
            "candidate, in the same order"
        )
    keep = np.isfinite(s) & np.isfinite(t)
    return s[keep], t[keep]


def _constant(x: np.ndarray) -> bool:
    return bool(np.all(x == x[0]))


def weighted_tau(scores: ArrayLike, truth: ArrayLike) -> float:
    """Weighted Kendall's tau of ``scores`` against ``truth``, in [-1, 1]; higher = better agreement.

    Exactly ``scipy.stats.weightedtau(scores, truth).statistic`` (defaults: ranks from the values themselves,
    hyperbolic weigher, additive), which weights agreement at the top of the ranking most. NaN when fewer than 2
    candidates have both values, or when either vector is constant (no ranking to agree with).
    """
    s, t = _paired(scores, truth)
    if s.size < 2 or _constant(s) or _constant(t):
        return float("nan")
    return float(scipy.stats.weightedtau(s, t).statistic)


def kendall_tau(scores: ArrayLike, truth: ArrayLike) -> float:
    """Kendall's tau-b of ``scores`` against ``truth``, in [-1, 1]; NaN with < 2 candidates or a constant vector."""
    s, t = _paired(scores, truth)
    if s.size < 2 or _constant(s) or _constant(t):
        return float("nan")
    return float(scipy.stats.kendalltau(s, t).statistic)


def spearman(scores: ArrayLike, truth: ArrayLike) -> float:
    """Spearman's rank correlation, in [-1, 1]; NaN with < 2 candidates or a constant vector."""
    s, t = _paired(scores, truth)
    if s.size < 2 or _constant(s) or _constant(t):
        return float("nan")
    return float(scipy.stats.spearmanr(s, t).statistic)


def pearson(scores: ArrayLike, truth: ArrayLike) -> float:
    """Pearson's linear correlation of the raw values, in [-1, 1]; NaN with < 2 candidates or a constant vector."""
    s, t = _paired(scores, truth)
    if s.size < 2 or _constant(s) or _constant(t):
        return float("nan")
    return float(np.corrcoef(s, t)[0, 1])


def top1_regret(scores: ArrayLike, truth: ArrayLike) -> float:
    """Accuracy lost by picking the metric's top candidate: ``max(truth) - truth[argmax(scores)]`` (>= 0; lower is
    better; in the units of ``truth``, e.g. accuracy points).

    When several candidates share the top score, the regret is the mean over them (the expected regret of breaking
    the tie at random), so the value does not depend on the candidates' order. NaN with < 2 candidates.
    """
    s, t = _paired(scores, truth)
    if s.size < 2:
        return float("nan")
    picked = t[s == s.max()]
    return float(t.max() - picked.mean())


def top_k_recall(scores: ArrayLike, truth: ArrayLike, k: int = 3) -> float:
    """Fraction of the truly best ``k`` candidates that are among the metric's top ``k``, in [0, 1]; higher = better.

    ``k`` is capped at the number of candidates. Ties are broken by candidate order (stable sort), so with ties at the
    k-th place the value is one of the equally valid answers. NaN with < 2 candidates.
    """
    if k < 1:
        raise ValueError(
            f"k must be a positive number of candidates, got {k}; use k=3 for the usual top-3 recall"
        )
    s, t = _paired(scores, truth)
    if s.size < 2:
        return float("nan")
    k = min(k, s.size)
    top_scores = set(np.argsort(-s, kind="stable")[:k].tolist())
    top_truth = set(np.argsort(-t, kind="stable")[:k].tolist())
    return len(top_scores & top_truth) / k


def ranking_agreement(scores: ArrayLike, truth: ArrayLike, *, k: int = 3) -> dict[str, float]:
    """Every statistic of this module at once, keyed as in ``report.json``'s ``validation.rows``:
    ``weighted_tau``, ``kendall_tau``, ``spearman``, ``pearson``, ``top1_regret`` and ``top{k}_recall``."""
    return {
        "weighted_tau": weighted_tau(scores, truth),
        "kendall_tau": kendall_tau(scores, truth),
        "spearman": spearman(scores, truth),
        "pearson": pearson(scores, truth),
        "top1_regret": top1_regret(scores, truth),
        f"top{k}_recall": top_k_recall(scores, truth, k=k),
    }
