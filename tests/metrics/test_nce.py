"""NCE against the conditional entropy computed by hand."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import metrics


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_library():
    # the test problems are small: on a shared 2-core machine, BLAS/OpenMP thread pools only oversubscribe
    # (measured: the same tests run ~10x slower with 2 threads per library under load)
    with threadpool_limits(limits=1):
        yield


def _one_hot_probs(source: np.ndarray, n_source: int) -> np.ndarray:
    probs = np.full((len(source), n_source), 0.1 / (n_source - 1))
    probs[np.arange(len(source)), source] = 0.9
    return probs


def test_perfectly_predictive_source_scores_zero():
    labels = np.repeat([0, 1, 2], 10)
    value = metrics.compute(
        "nce", np.zeros((30, 1)) + np.arange(30)[:, None], labels, source_probs=_one_hot_probs(labels, 4)
    )
    assert value == pytest.approx(0.0, abs=1e-12)


def test_matches_hand_computed_conditional_entropy():
    # z = 0 covers labels [a, a, b, b] (entropy log 2), z = 1 covers [b, b] (entropy 0); p(z=0) = 2/3
    labels = np.array(["a", "a", "b", "b", "b", "b"])
    source = np.array([0, 0, 0, 0, 1, 1])
    value = metrics.compute(
        "nce", np.arange(12.0).reshape(6, 2), labels, source_probs=_one_hot_probs(source, 3)
    )
    assert value == pytest.approx(-(2 / 3) * np.log(2), rel=1e-12)


def test_uninformative_source_scores_minus_the_label_entropy():
    labels = np.tile([0, 1, 2, 3], 25)
    value = metrics.compute(
        "nce",
        np.random.default_rng(0).normal(size=(100, 2)),
        labels,
        source_probs=_one_hot_probs(np.zeros(100, int), 5),
    )
    assert value == pytest.approx(-np.log(4), rel=1e-12)
