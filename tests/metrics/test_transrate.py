"""TransRate against the coding-rate definition with full D×D log-determinants."""

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


def _rate(z: np.ndarray, eps: float = 1e-4) -> float:
    n, d = z.shape
    return 0.5 * np.linalg.slogdet(np.eye(d) + z.T @ z / (n * eps))[1]


def _transrate_definition(features: np.ndarray, labels: np.ndarray) -> float:
    f = features.astype(np.float64)
    f = f - f.mean(axis=0)
    classes = np.unique(labels)
    return _rate(f) - np.mean([_rate(f[labels == c]) for c in classes])


@pytest.mark.parametrize(("n", "d"), [(300, 12), (60, 40), (40, 90)])
def test_matches_definition(n, d):
    # (60, 40) mixes class blocks smaller and larger than D, so both Sylvester sides are used
    rng = np.random.default_rng(n + d)
    labels = np.concatenate([np.zeros(n // 2, int), rng.integers(1, 4, size=n - n // 2)])
    features = rng.normal(size=(n, d)) + rng.normal(size=(4, d))[labels]
    assert metrics.compute("transrate", features, labels) == pytest.approx(
        _transrate_definition(features, labels), rel=1e-9
    )


def test_separated_classes_score_higher():
    rng = np.random.default_rng(1)
    labels = np.repeat(np.arange(4), 40)
    noise = rng.normal(size=(160, 8))
    assert metrics.compute("transrate", noise + 4 * np.eye(4, 8)[labels], labels) > metrics.compute(
        "transrate", noise, labels
    )


def test_single_sample_class_and_constant_columns_are_finite():
    rng = np.random.default_rng(2)
    features = np.hstack([rng.normal(size=(30, 5)), np.ones((30, 2))])
    labels = np.array([0] * 15 + [1] * 14 + [2])
    value = metrics.compute("transrate", features, labels)
    assert value == pytest.approx(_transrate_definition(features, labels), rel=1e-9)
