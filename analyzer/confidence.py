"""The one confidence rule: is a runner-up tied with the leader, not ruled out, or behind a clear leader?

A runner-up's P(best) is the share of the ``m`` bootstrap resamples used in which it has the best aggregate. It is
*tied* with the leader when the one-sided :data:`CONFIDENCE` Clopper-Pearson lower bound of that share reaches the
tie line :data:`TIED_P_BEST`; *not ruled out* when only the upper bound does; otherwise the leader is *clear*
(:func:`tie_state`). The bootstrap's tie set (``bootstrap.tied_top``), the headline
(:meth:`analyzer.result.RankingResult.headline`), the dashboard's lead figure, the table's shared ranks and the
bootstrap's early stopping (:mod:`analyzer.ranking.stopping`) all read it from here. Pure functions, no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

#: The tie line: a runner-up whose P(best) is at least this share of bootstrap resamples, with
#: :data:`CONFIDENCE`, is "tied at the top" with the leader (:func:`tie_state` states the whole rule).
TIED_P_BEST = 0.05
#: one-sided confidence of the tie-line test (the tie rule and the bootstrap's early stopping share it)
CONFIDENCE = 0.95

#: The three states of a runner-up against the tie line (:func:`tie_state`).
TIED, NOT_RULED_OUT, RULED_OUT = "tied", "not ruled out", "ruled out"


def p_best_bounds(p: float, m: int) -> tuple[float, float]:
    """One-sided :data:`CONFIDENCE` Clopper-Pearson (lower, upper) bounds of a P(best) estimated as ``p`` over ``m``
    resamples; split wins (ties) are rounded outwards, so the bounds are conservative."""
    from scipy.stats import beta

    low_wins, high_wins = math.floor(p * m + 1e-9), math.ceil(p * m - 1e-9)
    lower = 0.0 if low_wins <= 0 else float(beta.ppf(1 - CONFIDENCE, low_wins, m - low_wins + 1))
    upper = 1.0 if high_wins >= m else float(beta.ppf(CONFIDENCE, high_wins + 1, m - high_wins))
    return lower, upper


def tie_state(p: float, m: int) -> str:
    """The one confidence rule: a runner-up best in a share ``p`` of ``m`` resamples is :data:`TIED` with the
    leader when the lower bound of :func:`p_best_bounds` reaches :data:`TIED_P_BEST`, :data:`NOT_RULED_OUT` when
    only the upper bound does, else :data:`RULED_OUT` (3 of 50 → not ruled out, 10 of 50 → tied, 0 of 200 →
    ruled out; 0 of 50 is not ruled out: under 59 resamples no runner-up can be)."""
    lower, upper = p_best_bounds(p, m)
    return TIED if lower >= TIED_P_BEST else NOT_RULED_OUT if upper >= TIED_P_BEST else RULED_OUT


def confidence_statement(
    p_best: Mapping[str, float], tied: Sequence[str], open_: Sequence[str], display: Mapping[str, str], n: int
) -> str:
    """The bootstrap's sentence for the three states: ``tied`` (leader first) and the runners-up not ruled out
    (``open_``), each shown with its P(best) over ``n`` resamples."""

    def shown(models: Sequence[str]) -> str:
        return ", ".join(f"{display[m]} ({p_best[m]:.0%})" for m in models)

    line = f"{TIED_P_BEST:.0%} tie line (one-sided {CONFIDENCE:.0%} Clopper-Pearson bound of P(best))"
    unsure = f"; not ruled out: {shown(open_)}" if open_ else ""
    if len(tied) > 1:
        listed = ", ".join(display[m] for m in tied[:-1]) + f" and {display[tied[-1]]}"
        shares = ", ".join(f"{p_best[m]:.0%}" for m in tied[:-1]) + f" and {p_best[tied[-1]]:.0%}"
        return (
            f"Tied: {listed} are best in {shares} of {n} resamples; each runner-up's P(best) is above the "
            f"{line}{unsure}. Treat them as equally good and decide between them on cost or a short fine-tuning run."
        )
    top = tied[0]
    if open_:
        return (
            f"Likely best: {display[top]}, best in {p_best[top]:.0%} of {n} resamples; {shown(open_)} not ruled "
            f"out: its P(best) may still reach the {line}. More resamples would settle it."
        )
    return (
        f"Clear: {display[top]}, best in {p_best[top]:.0%} of {n} resamples; every other candidate's P(best) is "
        f"below the {line}."
    )


def rule_in_words() -> str:
    """The rule as a tooltip states it."""
    return (
        f"Tied: the runner-up's P(best) is at least {TIED_P_BEST:.0%} with {CONFIDENCE:.0%} confidence (one-sided "
        "Clopper-Pearson lower bound over the resamples used); not ruled out: only its upper bound reaches "
        f"{TIED_P_BEST:.0%}; otherwise the leader is clear."
    )
