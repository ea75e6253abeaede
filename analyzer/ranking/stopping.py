"""Sequential early stopping of the bootstrap (off by default: ``Ranker.run(bootstrap_early_stop=True)``).

The resamples are the same index sets as a full run's, scored in rounds of :data:`ROUND`; after each round the
P(best) of every candidate over the resamples so far is estimated, and the bootstrap stops when every one of them is
known to within :data:`MAX_MC_ERROR` (Monte Carlo standard error ``sqrt(p(1 - p) / m)`` after m resamples), or at
the requested number. A clear leader (best in every resample) therefore stops after one round; a close race runs the
full count, since an SE of 0.02 at P(best) = 0.5 needs 625 resamples. P(best) and the rank intervals then agree with
the full run's within that Monte Carlo error (``tests/analyzer/ranking/test_bootstrap_stopping.py``); the report's ``bootstrap``
block records ``n_resamples`` (used), ``n_requested`` and ``stopping`` (this rule).

Off by default so that a default run's report stays bit-identical to the full 200-resample answer.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from analyzer.ranking.statistics import mean_ranks

#: resamples scored between two looks at the estimate
ROUND = 50
#: stop once every candidate's P(best) has at most this Monte Carlo standard error
MAX_MC_ERROR = 0.02
#: the rule as the report states it
RULE = (
    f"rounds of {ROUND} resamples; stopped after the first round at which every candidate's P(best) had a Monte "
    f"Carlo standard error sqrt(p(1-p)/m) of at most {MAX_MC_ERROR}"
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


def settled(tables: Mapping[str, np.ndarray], higher_is_better: Mapping[str, bool], m: int) -> bool:
    """True when, after ``m`` resamples, every candidate's P(best) is within the stated Monte Carlo error."""
    p = p_best(tables, higher_is_better, m)
    return bool(np.all(np.sqrt(p * (1.0 - p) / m) <= MAX_MC_ERROR))


def rounds(n: int, early_stop: bool) -> Sequence[tuple[int, int]]:
    """The ``(start, stop)`` resample ranges scored one after another: all n at once without early stopping."""
    if not early_stop:
        return [(0, n)]
    return [(start, min(start + ROUND, n)) for start in range(0, n, ROUND)]
