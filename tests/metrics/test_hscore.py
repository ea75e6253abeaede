"""H-score: the eigendecomposition form against the reference's pinv formula and scikit-learn's LedoitWolf."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.covariance import LedoitWolf
from threadpoolctl import threadpool_limits

import metrics
from metrics.hscore import ledoit_wolf


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_library():
    # the test problems are small: on a shared 2-core machine, BLAS/OpenMP thread pools only oversubscribe
    # (measured: the same tests run ~10x slower with 2 threads per library under load)
    with threadpool_limits(limits=1):
        yield


def _class_mean_matrix(features: np.ndarray, labels: np.ndarray) -> np.ndarray:
    g = np.zeros_like(features)
    for c in np.unique(labels):
        g[labels == c] = features[labels == c].mean(axis=0)
    return g


def _hscore_pinv(features: np.ndarray, labels: np.ndarray) -> float:
    f = features.astype(np.float64)
    cov_f = np.cov(f, rowvar=False)
    cov_g = np.cov(_class_mean_matrix(f, labels), rowvar=False)
    return float(np.trace(np.linalg.pinv(cov_f, rcond=1e-15) @ cov_g))


def _hscore_shrinkage_sklearn(features: np.ndarray, labels: np.ndarray) -> float:
    f = features.astype(np.float64)
    f = f - f.mean(axis=0)
    fitted = LedoitWolf(assume_centered=False).fit(f)
    cov_g = np.cov(_class_mean_matrix(f, labels), rowvar=False)
    return float(
        np.trace(np.linalg.pinv(fitted.covariance_, rcond=1e-15) @ ((1 - fitted.shrinkage_) * cov_g))
    )


@pytest.mark.parametrize(("n", "d"), [(200, 10), (50, 80)])
def test_plain_matches_pinv_formula(n, d):
    rng = np.random.default_rng(n)
    labels = rng.integers(0, 4, size=n)
    features = rng.normal(size=(n, d)) + rng.normal(size=(4, d))[labels]
    assert metrics.compute("hscore", features, labels) == pytest.approx(
        _hscore_pinv(features, labels), rel=1e-8
    )


@pytest.mark.parametrize(("n", "d"), [(200, 10), (50, 80), (9000, 5)])
def test_shrinkage_matches_scikit_learn(n, d):
    rng = np.random.default_rng(d)
    labels = rng.integers(0, 3, size=n)
    features = (rng.normal(size=(n, d)) + rng.normal(size=(3, d))[labels] + 5.0).astype(np.float32)
    expected = _hscore_shrinkage_sklearn(features, labels)
    assert metrics.compute("hscore", features, labels, shrinkage=True) == pytest.approx(expected, rel=1e-9)


def test_ledoit_wolf_matches_scikit_learn_covariance():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(120, 30)) @ rng.normal(size=(30, 30))
    x -= x.mean(axis=0)
    shrunk, alpha = ledoit_wolf(x.T @ x, (x**2).sum(axis=1), len(x))
    fitted = LedoitWolf().fit(x)
    assert alpha == pytest.approx(fitted.shrinkage_, rel=1e-10)
    np.testing.assert_allclose(shrunk, fitted.covariance_, rtol=1e-10, atol=1e-12)


def test_plain_score_reaches_c_minus_one_when_n_below_d():
    rng = np.random.default_rng(4)
    labels = np.repeat(np.arange(3), 10)
    assert metrics.compute("hscore", rng.normal(size=(30, 100)), labels) == pytest.approx(2.0, rel=1e-6)


def test_constant_features_score_zero():
    assert metrics.compute("hscore", np.ones((20, 4)), np.arange(20) % 2) == 0.0


def test_shrinkage_flag_must_be_boolean():
    with pytest.raises(ValueError, match="True or False"):
        metrics.compute(
            "hscore", np.random.default_rng(0).normal(size=(20, 3)), np.arange(20) % 2, shrinkage="yes"
        )
