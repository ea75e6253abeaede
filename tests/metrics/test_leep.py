"""LEEP against its definition written as loops, and its behaviour on informative vs uninformative sources."""

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


def _leep_loops(theta: np.ndarray, labels: np.ndarray) -> float:
    _, y = np.unique(labels, return_inverse=True)
    n, n_source = theta.shape
    joint = np.zeros((y.max() + 1, n_source))
    for i in range(n):
        joint[y[i]] += theta[i] / n
    conditional = joint / joint.sum(axis=0)
    return float(np.mean([np.log(theta[i] @ conditional[y[i]]) for i in range(n)]))


def _probs(rng: np.random.Generator, n: int, n_source: int, labels: np.ndarray | None = None) -> np.ndarray:
    logits = rng.normal(size=(n, n_source))
    if labels is not None:
        logits += 4.0 * np.eye(labels.max() + 1, n_source)[labels]
    return np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)


def test_matches_definition():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, size=90)
    theta = _probs(rng, 90, 7)
    value = metrics.compute("leep", rng.normal(size=(90, 3)), labels, source_probs=theta)
    assert value == pytest.approx(_leep_loops(theta, labels), rel=1e-12)


def test_source_predicting_the_labels_scores_higher():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 3, size=300)
    features = rng.normal(size=(300, 4))
    informative = metrics.compute("leep", features, labels, source_probs=_probs(rng, 300, 10, labels))
    uninformative = metrics.compute("leep", features, labels, source_probs=_probs(rng, 300, 10))
    assert informative > uninformative
    assert informative <= 0.0


def test_source_class_never_predicted_does_not_give_nan():
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, size=50)
    theta = np.hstack([_probs(rng, 50, 4), np.zeros((50, 1))])
    value = metrics.compute("leep", rng.normal(size=(50, 2)), labels, source_probs=theta)
    assert value == pytest.approx(_leep_loops(theta[:, :4], labels), rel=1e-12)


def test_float32_probabilities_are_accepted():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 3, size=60)
    theta = _probs(rng, 60, 5)
    features = rng.normal(size=(60, 2))
    assert metrics.compute("leep", features, labels, source_probs=theta.astype(np.float32)) == pytest.approx(
        metrics.compute("leep", features, labels, source_probs=theta), rel=1e-6
    )
