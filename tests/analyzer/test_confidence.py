"""The one confidence rule (analyzer.confidence) at its boundaries, and every view reading it the same way."""

from __future__ import annotations

import numpy as np
import pytest

from analyzer.confidence import NOT_RULED_OUT, RULED_OUT, TIED, p_best_bounds, tie_state
from analyzer.ranking.statistics import bootstrap_summary


@pytest.mark.parametrize(
    ("wins", "m", "state"),
    [
        (3, 50, NOT_RULED_OUT),  # the demo's adversarial LeNet: 6 %, lower bound 1.7 %
        (10, 50, TIED),  # lower bound 11 %
        (0, 200, RULED_OUT),  # upper bound 1.5 %
        (0, 59, RULED_OUT),  # the fewest resamples that can rule a never-winner out
        (0, 58, NOT_RULED_OUT),
        (1, 100, RULED_OUT),  # upper bound 4.7 %
    ],
)
def test_the_rule_has_three_states_decided_by_the_clopper_pearson_bounds(wins, m, state):
    assert tie_state(wins / m, m) == state


def test_the_rule_flips_exactly_where_the_lower_bound_crosses_five_percent():
    # with 50 resamples the lower bound first reaches 5 % at 6 wins (5.4 %); 5 wins give 4.0 %
    assert p_best_bounds(5 / 50, 50)[0] < 0.05 <= p_best_bounds(6 / 50, 50)[0]
    assert tie_state(5 / 50, 50) == NOT_RULED_OUT and tie_state(6 / 50, 50) == TIED
    assert p_best_bounds(3 / 50, 50)[0] == pytest.approx(0.0167, abs=5e-4)


def test_a_six_percent_runner_up_of_fifty_resamples_is_not_tied_with_the_leader():
    # best in 47 of 50 resamples vs 3 of 50: the old point-estimate rule (≥ 5 %) called this a tie
    wins = np.array([[2.0, 1.0, 0.0]] * 47 + [[1.0, 2.0, 0.0]] * 3)
    p_best, _, block = bootstrap_summary(
        ["a", "b", "c"], {"m": wins}, {"m": True}, n_resamples=50, seed=0, fraction=0.8
    )
    assert p_best["b"] == pytest.approx(0.06)
    assert block["tied_top"] == ["a"] and block["not_ruled_out"] == ["b", "c"]
    assert block["statement"].startswith(
        "Likely best: a, best in 94% of 50 resamples; b (6%), c (0%) not ruled out"
    )


# ------------------------------------------------------------------ every view reads the one rule
def _demo_like(adv_wins: int, n: int = 50):
    """Three candidates like the demo's: the clean LeNet first on both metrics, the adversarial one second, a ResNet
    last; in ``adv_wins`` of ``n`` resamples the adversarial LeNet is best instead."""
    from tests.fixtures.make_run import aggregate_of

    models = ["timm:lenet_clean", "timm:lenet_adv", "timm:resnet32"]
    boot = np.array([[3.0, 2.0, 1.0]] * (n - adv_wins) + [[2.0, 3.0, 1.0]] * adv_wins)
    return aggregate_of(
        name="t",
        dataset={},
        config={},
        metric_entries=[
            {"name": m, "params": {}, "higher_is_better": True, "kind": "label", "in_aggregate": True}
            for m in ("logme", "knn")
        ],
        candidates=[
            {"model": m, "scores": {"logme": s, "knn": s}}
            for m, s in zip(models, (3.0, 2.0, 1.0), strict=True)
        ],
        boot_scores={"logme": boot, "knn": boot},
        bootstrap_params={"n_resamples": n, "seed": 0, "fraction": 0.8},
        created="2026-01-01T00:00:00+00:00",
    )


def _views(result):
    from analyzer.dashboard import summary
    from analyzer.reports import markdown
    from analyzer.reports.csv_report import ranking_table

    lead = next(f for f in summary.headline_figures(result) if f.label == "Lead over the runner-up")
    return lead.value, list(ranking_table(result)["rank"]), markdown.render(result)


def test_a_runner_up_best_in_3_of_50_resamples_is_not_ruled_out_in_every_view():
    result = _demo_like(adv_wins=3)
    assert result.bootstrap.tied_top == ["timm:lenet_clean"] and result.top_tie() == ["timm:lenet_clean"]
    assert result.not_ruled_out() == ["timm:lenet_adv", "timm:resnet32"]  # 0 of 50 cannot be ruled out either
    assert result.headline() == (
        "Likely best: lenet_clean, best in 94% of 50 resamples (mean rank 1.00); lenet_adv (6%), resnet32 (0%) "
        "not ruled out; runner-up lenet_adv (mean rank 2.00). Relied on the mean rank of logme, knn."
    )
    lead, ranks, md = _views(result)
    assert lead == "1.00 ranks (not ruled out)" and ranks == [1, 2, 3]
    assert result.headline() in md and "Likely best: lenet_clean, best in 94% of 50 resamples" in md


def test_a_runner_up_best_in_10_of_50_resamples_is_tied_and_shares_the_first_rank():
    result = _demo_like(adv_wins=10)
    assert result.bootstrap.tied_top == ["timm:lenet_clean", "timm:lenet_adv"]
    assert (
        result.top_tie() == ["timm:lenet_clean", "timm:lenet_adv"] and result.runner_up() == "timm:resnet32"
    )
    assert result.headline().startswith("Tied: lenet_clean and lenet_adv (mean rank 1.00, mean rank 2.00)")
    lead, ranks, md = _views(result)
    assert lead == "tied" and ranks == [1, 1, 3]  # the leader stays first in the table
    assert list(result.models[:2]) == ["timm:lenet_clean", "timm:lenet_adv"]
    assert "Tied: lenet_clean and lenet_adv are best in 80% and 20% of 50 resamples" in md


def test_a_leader_best_in_every_one_of_200_resamples_is_clear():
    result = _demo_like(adv_wins=0, n=200)
    assert result.top_tie() == ["timm:lenet_clean"] and result.not_ruled_out() == []
    assert result.headline().startswith("Clear: lenet_clean, best in 100% of 200 resamples (mean rank 1.00)")
    lead, ranks, _ = _views(result)
    assert lead == "1.00 ranks" and ranks == [1, 2, 3]


def test_a_report_written_before_not_ruled_out_existed_still_loads():
    from analyzer.result import RankingResult

    saved = _demo_like(adv_wins=3).to_dict()
    del saved["bootstrap"]["not_ruled_out"]
    old = RankingResult.from_dict(saved)
    assert old.bootstrap.not_ruled_out == () and old.not_ruled_out() == []
