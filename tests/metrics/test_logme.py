"""LogME: the vectorised fixed point against a direct, per-column transcription of the reference algorithm."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import metrics
from metrics.logme import gram64, logme_evidences
from tests.conftest import PROJECT_ROOT

_BENCH = PROJECT_ROOT / "benchmarks" / "metrics_bench.py"
_spec = importlib.util.spec_from_file_location("metrics_bench", _BENCH)
_bench = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_bench)
#: the benchmark's baseline doubles as the test oracle: METRICS.md § logme transcribed literally
_reference_logme = _bench.reference_logme_loop


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_library():
    # the test problems are small: on a shared 2-core machine, BLAS/OpenMP thread pools only oversubscribe
    # (measured: the same tests run ~10x slower with 2 threads per library under load)
    with threadpool_limits(limits=1):
        yield


def _onehot(labels: np.ndarray) -> np.ndarray:
    _, codes = np.unique(labels, return_inverse=True)
    return np.eye(codes.max() + 1)[codes]


@pytest.mark.parametrize(("n", "d"), [(300, 20), (40, 60), (60, 60), (61, 60)])
def test_classification_matches_direct_transcription(n, d):
    rng = np.random.default_rng(n + d)
    labels = rng.integers(0, 5, size=n)
    features = rng.normal(size=(n, d)) + rng.normal(size=(5, d))[labels]
    assert metrics.compute("logme", features, labels) == pytest.approx(
        _reference_logme(features, _onehot(labels)), rel=1e-9
    )


def test_regression_matches_direct_transcription():
    rng = np.random.default_rng(1)
    features = rng.normal(size=(250, 15)).astype(np.float32)
    targets = features.astype(np.float64) @ rng.normal(size=(15, 3)) + rng.normal(size=(250, 3))
    assert metrics.compute("logme", features, targets) == pytest.approx(
        _reference_logme(features, targets), rel=1e-9
    )


def test_rank_deficient_features_drop_rounding_noise_components():
    # [F, 0] has exact zero eigenvalues; rotating it by an orthogonal O keeps the spectrum, but the Gram of the
    # rotated features has rounding-noise eigenvalues instead of zeros, which must be cut, not kept
    rng = np.random.default_rng(2)
    full = rng.normal(size=(200, 6)) + 2.0
    padded = np.hstack([full, np.zeros((200, 10))])
    rotation, _ = np.linalg.qr(rng.normal(size=(16, 16)))
    labels = rng.integers(0, 3, size=200)
    expected = _reference_logme(padded, _onehot(labels))
    assert metrics.compute("logme", padded, labels) == pytest.approx(expected, rel=1e-9)
    assert metrics.compute("logme", padded @ rotation, labels) == pytest.approx(expected, rel=1e-9)


def test_duplicated_and_constant_columns_give_a_finite_value():
    rng = np.random.default_rng(2)
    base = rng.normal(size=(200, 6))
    features = np.hstack([base, base @ rng.normal(size=(6, 6)), np.ones((200, 2)), np.zeros((200, 3))])
    assert np.isfinite(metrics.compute("logme", features, rng.integers(0, 3, size=200)))


def test_one_evidence_per_class_or_target_column():
    rng = np.random.default_rng(3)
    features = rng.normal(size=(100, 5))
    assert logme_evidences(features, rng.integers(0, 4, size=100)).shape == (4,)
    assert logme_evidences(features, rng.normal(size=(100, 7))).shape == (7,)


def test_chunked_gram_equals_float64_product():
    rng = np.random.default_rng(4)
    features = rng.normal(size=(9000, 7)).astype(np.float32)  # more rows than one chunk
    centre = features.mean(axis=0, dtype=np.float64)
    exact = (features.astype(np.float64) - centre).T @ (features.astype(np.float64) - centre)
    np.testing.assert_allclose(gram64(features, center=centre), exact, rtol=1e-12)


def test_informative_features_score_higher_than_noise():
    rng = np.random.default_rng(5)
    labels = np.repeat(np.arange(4), 50)
    noise = rng.normal(size=(200, 16))
    informative = noise + 3.0 * np.eye(4, 16)[labels]
    assert metrics.compute("logme", informative, labels) > metrics.compute("logme", noise, labels)


def test_all_zero_features_raise_with_fix():
    with pytest.raises(ValueError, match="all zero.*check that the features"):
        metrics.compute("logme", np.zeros((20, 4)), np.arange(20) % 2)
