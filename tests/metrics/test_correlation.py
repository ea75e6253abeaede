"""Ranking-agreement statistics: scipy-exact, NaN-safe, and the top-k summaries."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from metrics.correlation import (
    kendall_tau,
    pearson,
    ranking_agreement,
    spearman,
    top1_regret,
    top_k_recall,
    weighted_tau,
)


def test_weighted_tau_is_scipy_defaults():
    rng = np.random.default_rng(0)
    for _ in range(5):
        scores, truth = rng.normal(size=9), rng.normal(size=9)
        assert weighted_tau(scores, truth) == scipy.stats.weightedtau(scores, truth).statistic


def test_weighted_tau_weights_the_top_more():
    truth = [5, 4, 3, 2, 1]
    swap_top = [4, 5, 3, 2, 1]
    swap_bottom = [5, 4, 3, 1, 2]
    assert weighted_tau(swap_bottom, truth) > weighted_tau(swap_top, truth)


def test_missing_scores_are_dropped():
    scores = [0.1, None, 0.3, float("nan"), 0.5]
    truth = [1.0, 9.0, 2.0, 9.0, 3.0]
    assert weighted_tau(scores, truth) == pytest.approx(weighted_tau([0.1, 0.3, 0.5], [1, 2, 3]))
    assert kendall_tau(scores, truth) == pytest.approx(1.0)


@pytest.mark.parametrize("func", [weighted_tau, kendall_tau, spearman, pearson, top1_regret, top_k_recall])
def test_fewer_than_two_candidates_give_nan(func):
    assert math.isnan(func([0.3, None], [0.5, 0.6]))
    assert math.isnan(func([], []))


def test_length_mismatch_raises_with_fix():
    with pytest.raises(ValueError, match="one score and one true accuracy per candidate"):
        kendall_tau([1, 2, 3], [1, 2])


def test_rank_statistics_match_scipy():
    rng = np.random.default_rng(1)
    scores, truth = rng.normal(size=12), rng.normal(size=12)
    assert kendall_tau(scores, truth) == pytest.approx(scipy.stats.kendalltau(scores, truth).statistic)
    assert spearman(scores, truth) == pytest.approx(scipy.stats.spearmanr(scores, truth).statistic)
    assert pearson(scores, truth) == pytest.approx(scipy.stats.pearsonr(scores, truth).statistic)


def test_top1_regret():
    truth = [0.70, 0.90, 0.80]
    assert top1_regret([3, 1, 2], truth) == pytest.approx(0.20)
    assert top1_regret([1, 3, 2], truth) == 0.0
    # a tie at the top costs the mean regret of the tied candidates, whatever their order
    assert top1_regret([3, 3, 1], truth) == pytest.approx(0.10)
    assert top1_regret([3, 1, 3], [0.9, 0.8, 0.7]) == top1_regret([3, 3, 1], [0.7, 0.9, 0.8])


def test_top_k_recall():
    truth = [0.9, 0.8, 0.7, 0.1, 0.0]
    assert top_k_recall([5, 4, 3, 2, 1], truth) == 1.0
    assert top_k_recall([5, 4, 1, 3, 2], truth) == pytest.approx(2 / 3)
    assert top_k_recall([5, 4, 1, 3, 2], truth, k=1) == 1.0
    assert top_k_recall([1, 2], [2, 1], k=5) == 1.0  # k capped at the pool size
    with pytest.raises(ValueError, match="positive"):
        top_k_recall([1, 2], [1, 2], k=0)


def test_ranking_agreement_keys_match_the_report_schema():
    row = ranking_agreement([0.1, 0.5, 0.3, 0.2], [0.6, 0.9, 0.8, 0.7])
    assert set(row) == {"weighted_tau", "kendall_tau", "spearman", "pearson", "top1_regret", "top3_recall"}
    assert row["kendall_tau"] == pytest.approx(1.0)
    assert row["top1_regret"] == 0.0


def test_constant_vector_gives_nan_not_a_warning(recwarn):
    assert math.isnan(kendall_tau([1, 1, 1], [1, 2, 3]))
    assert math.isnan(weighted_tau([1, 2, 3], [4, 4, 4]))
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)]
