"""Budgets, the Pareto front and the recommendation (analyzer.budget): pure rules over rows and costs."""

from __future__ import annotations

import itertools
import random

import pytest

from analyzer.budget import (
    Budget,
    excess,
    format_quantity,
    pareto_front,
    recommend,
    violations,
    within_budget,
)

# Four candidates, best aggregate first: the big one ranks best, the small one worst.
ROWS = [("big", 1.5), ("mid", 2.0), ("small", 3.0), ("tiny", 3.5)]
COSTS = {
    "big": {"params": 850_000, "flops": 250e6, "latency_ms": 9.0, "peak_memory_mb": 40.0},
    "mid": {"params": 460_000, "flops": 140e6, "latency_ms": 5.0, "peak_memory_mb": 20.0},
    "small": {"params": 270_000, "flops": 81e6, "latency_ms": 3.0, "peak_memory_mb": 14.0},
    "tiny": {"params": 62_000, "flops": 1.3e6, "latency_ms": 4.0, "peak_memory_mb": 3.0},
}


def test_no_budget_recommends_the_best_aggregate():
    pick = recommend(ROWS, COSTS, Budget())
    assert pick.model == "big" and not pick.tie_broken
    assert "no budget" in pick.reason


@pytest.mark.parametrize(
    ("budget", "expected"),
    [
        (Budget(max_params=300_000), "small"),
        (Budget(max_params=460_000), "mid"),  # the limit itself is within budget
        (Budget(max_flops=100e6), "small"),
        (Budget(max_latency_ms=4.5), "small"),
        (Budget(max_memory_mb=10), "tiny"),
        (Budget(max_params=900_000, max_latency_ms=3.5), "small"),
    ],
)
def test_each_limit_picks_the_best_candidate_within_it(budget, expected):
    pick = recommend(ROWS, COSTS, budget)
    assert pick.model == expected
    assert budget.describe() in pick.reason
    skipped = [m for m, _ in ROWS[: [m for m, _ in ROWS].index(expected)]]
    for model in skipped:
        assert model in pick.reason  # "better ranked but over budget" names them


def test_none_fits_names_the_closest_and_recommends_nothing():
    budget = Budget(max_params=50_000)
    pick = recommend(ROWS, COSTS, budget)
    assert pick.model is None
    assert pick.closest == "tiny"  # 62k is 24 % over; every other candidate is further
    assert "No candidate fits the budget" in pick.reason and "tiny" in pick.reason
    assert "params 62k > 50k" in pick.reason


def test_closest_is_judged_by_the_worst_exceeded_limit():
    budget = Budget(max_params=250_000, max_latency_ms=2.0)
    # small: params 8 % over, latency 50 % over; tiny: params within, latency 100 % over
    assert recommend(ROWS, COSTS, budget).closest == "small"


def test_a_statistical_tie_is_broken_on_cost_and_says_so():
    pick = recommend(ROWS, COSTS, Budget(), tied=["big", "mid"], axis="latency_ms")
    assert pick.model == "mid" and pick.tie_broken
    assert "tied" in pick.reason and "broken on cost" in pick.reason and "latency_ms" in pick.reason


def test_a_tie_is_broken_only_among_candidates_within_budget():
    pick = recommend(ROWS, COSTS, Budget(max_params=500_000), tied=["big", "mid", "small"], axis="flops")
    assert pick.model == "small" and pick.tie_broken
    assert "big" not in pick.reason.split("broken on cost")[1]


def test_a_tie_that_does_not_hold_the_pick_is_not_broken():
    pick = recommend(ROWS, COSTS, Budget(max_params=300_000), tied=["big", "mid"])
    assert pick.model == "small" and not pick.tie_broken


def test_unmeasured_cost_is_never_within_a_budget_but_fine_without_one():
    costs = {**COSTS, "big": None}
    assert within_budget(None, Budget()) is True
    assert within_budget(None, Budget(max_params=10**9)) is None
    assert within_budget({"params": 5}, Budget(max_params=10, max_latency_ms=1)) is None
    assert within_budget({"params": 50}, Budget(max_params=10, max_latency_ms=1)) is False
    assert recommend(ROWS, costs, Budget(max_params=10**9)).model == "mid"
    assert violations(None, Budget(max_latency_ms=1.0)) == ["latency_ms not measured"]
    assert excess(None, Budget(max_latency_ms=1.0)) == float("inf")


def _brute_force_front(rows, costs, axis):
    front = []
    for m, r in rows:
        c = costs[m][axis]
        beaten = any(
            r2 <= r and costs[m2][axis] <= c and (r2 < r or costs[m2][axis] < c) for m2, r2 in rows if m2 != m
        )
        if not beaten:
            front.append(m)
    return front


@pytest.mark.parametrize("axis", ["latency_ms", "flops", "params"])
def test_pareto_front_is_exactly_the_non_dominated_set(axis):
    front = pareto_front(ROWS, COSTS, axis)
    assert front == _brute_force_front(ROWS, COSTS, axis)
    assert front[0] == "big"  # the best rank is always on the front


def test_pareto_front_on_random_points_with_ties():
    rng = random.Random(0)
    for _ in range(200):
        n = rng.randint(1, 8)
        rows = [(f"m{i}", float(rng.randint(1, 4))) for i in range(n)]
        costs = {m: {"latency_ms": float(rng.randint(1, 4))} for m, _ in rows}
        front = pareto_front(rows, costs, "latency_ms")
        assert front == _brute_force_front(rows, costs, "latency_ms")
        for a, b in itertools.permutations(front, 2):  # no member dominates another
            ra, rb = dict(rows)[a], dict(rows)[b]
            ca, cb = costs[a]["latency_ms"], costs[b]["latency_ms"]
            assert not (ra <= rb and ca <= cb and (ra < rb or ca < cb))


def test_pareto_front_leaves_out_candidates_without_rank_or_cost():
    rows = [*ROWS, ("unranked", None), ("unmeasured", 0.5)]
    costs = {**COSTS, "unranked": {"latency_ms": 0.1}, "unmeasured": None}
    assert set(pareto_front(rows, costs, "latency_ms")) <= {m for m, _ in ROWS}


def test_budget_round_trips_and_describes_itself():
    budget = Budget.from_mapping({"max_params": 300_000, "max_latency_ms": 2.5, "other": 1})
    assert budget.to_dict() == {
        "max_params": 300_000,
        "max_flops": None,
        "max_latency_ms": 2.5,
        "max_memory_mb": None,
    }
    assert budget.describe() == "params <= 300k, latency_ms <= 2.5 ms"
    assert Budget().describe() == "no budget" and not Budget().is_set()


def test_format_quantity():
    assert format_quantity(269_722) == "270k"
    assert format_quantity(81_100_800, " FLOPs") == "81.1M FLOPs"
    assert format_quantity(1234.6, " ms") == "1235 ms"
    assert format_quantity(13.78, " MiB") == "13.8 MiB"


def test_a_latency_difference_inside_its_spread_does_not_break_a_tie_but_flops_can():
    costs = {
        "big": {"params": 10, "flops": 100, "latency_ms": 1.39, "latency_iqr_ms": 0.4},
        "mid": {"params": 10, "flops": 100, "latency_ms": 1.36, "latency_iqr_ms": 0.5},
    }
    rows = [("big", 1.25), ("mid", 1.75)]
    pick = recommend(rows, costs, Budget(), tied=["big", "mid"])
    assert pick.model == "big" and not pick.tie_broken  # 0.03 ms apart, IQRs 0.4-0.5 ms: noise
    assert "cannot be broken on cost" in pick.reason and "better mean rank" in pick.reason
    costs["mid"]["flops"] = 50
    pick = recommend(rows, costs, Budget(), tied=["big", "mid"])
    assert pick.model == "mid" and pick.tie_broken and "lowest flops" in pick.reason
