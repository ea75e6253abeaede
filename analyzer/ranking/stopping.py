"""Sequential early stopping of the bootstrap (on by default; ``--no-bootstrap-early-stop`` scores every resample).

The resamples are the same index sets as a full run's, scored in rounds of :data:`ROUND`. After each round the
bootstrap stops when the decision it supports is settled:

1. every candidate is on a known side of the tie line (:data:`~analyzer.ranking.statistics.TIED_P_BEST`): the
   one-sided 95 % Clopper-Pearson bound of its P(best) lies on the same side as its estimate (a candidate that won
   none of m resamples is ruled out once ``1 - 0.05^(1/m) < 0.05``, i.e. from m = 59: hence rounds of 60); and
2. the leader's P(best) is known to within :data:`MAX_MC_ERROR` (Monte Carlo standard error ``sqrt(p(1 - p)/m)``).

A clear leader (best in every resample) therefore stops after the first round, 60 resamples instead of 200; a
race, where the leader's P(best) is well below 1, runs the full count (an SE of 0.02 at P(best) = 0.9 needs 225).
P(best) and the rank intervals then agree with the full run's within Monte Carlo error
(``tests/analyzer/ranking/test_bootstrap_stopping.py``; ``benchmarks/bootstrap_bench.py`` measures both). The
stopped run's resamples are the full run's first m, so the report is deterministic for a seed; its ``bootstrap``
block records ``n_resamples`` (used), ``n_requested`` and ``stopping`` (this rule). Each round re-does a metric's
shared set-up (kNN's wide neighbour search, the full Gram), at most four times at the default 200.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

import numpy as np

from analyzer.ranking.statistics import TIED_P_BEST, mean_ranks

#: resamples scored between two looks at the estimate: the fewest at which a candidate that never won can be ruled
#: out of a tie at 95 % confidence (59), rounded up
ROUND = 60
#: the leader's P(best) must have at most this Monte Carlo standard error
MAX_MC_ERROR = 0.02
#: one-sided confidence of the tie-line test
CONFIDENCE = 0.95
#: the rule as the report states it
RULE = (
    f"rounds of {ROUND} resamples; stopped after the first round at which every candidate's P(best) was on a "
    f"known side of the {TIED_P_BEST:.0%} tie line (one-sided {CONFIDENCE:.0%} Clopper-Pearson bound) and the "
    f"leader's P(best) had a Monte Carlo standard error sqrt(p(1-p)/m) of at most {MAX_MC_ERROR}"
)


def p_best(tables: Mapping[str, np.ndarray], higher_is_better: Mapping[str, bool], m: int) -> np.ndarray:
    """Share of the first ``m`` resamples in which each candidate has the best aggregate (ties split), as
    :func:`analyzer.ranking.statistics.bootstrap_summary` counts it. ``tables``: {metric: (≥ m, n_candidates)}."""
    names = list(tables)
    n_candidates = next(iter(tables.values())).shape[1]
    wins = np.zeros(n_candidates)
    for b in range(m):
        agg = mean_ranks(np.vstack([tables[k][b] for k in names]), [higher_is_better[k] for k in names])
        agg = np.where(np.isfinite(agg), agg, np.inf)
        best = np.flatnonzero(agg == agg.min())
        wins[best] += 1.0 / len(best)
    return wins / m


def p_best_bounds(p: float, m: int) -> tuple[float, float]:
    """One-sided :data:`CONFIDENCE` Clopper-Pearson (lower, upper) bounds of a P(best) estimated as ``p`` over ``m``
    resamples; split wins (ties) are rounded outwards, so the bounds are conservative."""
    from scipy.stats import beta

    low_wins, high_wins = math.floor(p * m + 1e-9), math.ceil(p * m - 1e-9)
    lower = 0.0 if low_wins <= 0 else float(beta.ppf(1 - CONFIDENCE, low_wins, m - low_wins + 1))
    upper = 1.0 if high_wins >= m else float(beta.ppf(CONFIDENCE, high_wins + 1, m - high_wins))
    return lower, upper


def settled(tables: Mapping[str, np.ndarray], higher_is_better: Mapping[str, bool], m: int) -> bool:
    """True when, after ``m`` resamples, every candidate is on a known side of the tie line and the leader's P(best)
    is within the stated Monte Carlo error (the module's rule)."""
    p = p_best(tables, higher_is_better, m)
    for value in p:
        lower, upper = p_best_bounds(float(value), m)
        if not (upper < TIED_P_BEST or lower >= TIED_P_BEST):
            return False
    leader = float(p.max())
    return bool(math.sqrt(leader * (1.0 - leader) / m) <= MAX_MC_ERROR)


def rounds(n: int, early_stop: bool) -> Iterator[tuple[int, int]]:
    """The ``(start, stop)`` resample ranges scored one after another: all n at once without early stopping.

    Lazy: a range is made only when the previous one has been scored (a huge ``n`` used to build the whole list of
    rounds first, 21 GB for 1e20 resamples, before the first was scored; the bound is
    :data:`analyzer.limits.MAX_N_BOOTSTRAP`, checked with the request)."""
    if not early_stop:
        yield (0, n)
        return
    for start in range(0, n, ROUND):
        yield (start, min(start + ROUND, n))
