"""TMI: golden values, a brute-force Kozachenko–Leonenko check, the reference's class rules, bad inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from scipy.special import digamma

import metrics
import metrics.tmi as tmi_module

# golden values: tests/metrics/test_golden.py checks every entry of expected.json for every metric


def _naive_tmi(features: np.ndarray, labels: np.ndarray, k: int = 3, min_dist: float = 1.0) -> float:
    """METRICS.md literally, with a full n_c×n_c×D broadcast for the max-norm distances."""
    x = features.astype(np.float64)
    x = x - x.mean(axis=0)
    _, y = np.unique(labels, return_inverse=True)
    n, d = x.shape
    terms = []
    for c in np.unique(y):
        xc = x[y == c]
        n_c = len(xc)
        if n_c < 2:
            terms.append(0.0)
            continue
        dist = np.abs(xc[:, None, :] - xc[None, :, :]).max(axis=2)
        if n_c <= k:
            terms.append(np.inf)
            continue
        eps = np.maximum(np.sort(dist, axis=1)[:, k], min_dist)
        terms.append(n_c / n * (-digamma(k) + digamma(n_c) + d / n_c * np.log(2 * eps).sum()))
    terms = np.array(terms)
    return float(terms[np.isfinite(terms)].mean())


def _classes(seed: int = 0, sizes: tuple[int, ...] = (30, 25, 40), d: int = 6, scale: float = 4.0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(len(sizes)), sizes)
    features = rng.normal(scale=scale, size=(len(labels), d)) + 3.0 * labels[:, None]
    return features, labels


def test_tmi_equals_brute_force_estimate() -> None:
    features, labels = _classes()
    assert metrics.compute("tmi", features, labels) == pytest.approx(_naive_tmi(features, labels), rel=1e-10)


def test_tmi_drops_classes_with_at_most_k_samples_and_keeps_single_samples_as_zero() -> None:
    # sizes: 30 and 25 count; 3 (= k) is dropped (infinite in the reference); 1 contributes h = 0
    features, labels = _classes(sizes=(30, 25, 3, 1))
    value = metrics.compute("tmi", features, labels)
    assert value == pytest.approx(_naive_tmi(features, labels), rel=1e-10)
    kept = labels < 2
    two_classes = metrics.compute("tmi", features[kept], labels[kept]) * 2 * kept.sum() / len(labels)
    assert value == pytest.approx(two_classes / 3, rel=1e-10)  # 3 finite terms: two classes and the zero


def test_tmi_blocked_distances_match_one_block(monkeypatch: pytest.MonkeyPatch) -> None:
    features, labels = _classes()
    whole = metrics.compute("tmi", features, labels)
    monkeypatch.setattr(tmi_module, "_BLOCK_ENTRIES", 50)  # one row per block
    assert metrics.compute("tmi", features, labels) == pytest.approx(whole, rel=1e-12)


def test_tmi_clamped_everywhere_depends_only_on_class_sizes() -> None:
    # The documented scale dependence: tiny features put every distance under min_dist = 1.
    features, labels = _classes(scale=1e-3)
    features = features * 1e-3
    n, d = features.shape
    sizes = np.bincount(labels)
    expected = np.mean([s / n * (-digamma(3) + digamma(s) + d * np.log(2.0)) for s in sizes])
    assert metrics.compute("tmi", features, labels) == pytest.approx(expected, rel=1e-12)
    assert "feature_scale" not in metrics.info("tmi").properties


def test_tmi_handles_duplicates_constant_columns_and_wide_features_without_warnings() -> None:
    features, labels = _classes(d=40, sizes=(10, 12))
    features[:, 0] = 7.0
    features[1] = features[0]
    features[2] = features[0]
    features[3] = features[0]  # sample 0 has three exact duplicates: its 3rd neighbour is at distance 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = metrics.compute("tmi", features, labels)
    assert np.isfinite(value)
    assert value == pytest.approx(_naive_tmi(features, labels), rel=1e-10)


def test_tmi_leaves_input_unmodified_and_ignores_label_names_and_order() -> None:
    features, labels = _classes()
    before = features.copy()
    features.flags.writeable = False
    value = metrics.compute("tmi", features, labels)
    np.testing.assert_array_equal(features, before)
    names = np.array(["x", "b", "a"])[labels]
    order = np.random.default_rng(3).permutation(len(labels))
    assert metrics.compute("tmi", features[order], names[order]) == pytest.approx(value, rel=1e-12)


@pytest.mark.parametrize(
    ("features", "labels", "params", "message"),
    [
        (np.array([[0.0, np.inf], [1.0, 1.0], [2.0, 2.0]]), np.array([0, 1, 1]), {}, "NaN or inf"),
        (np.ones((5, 2)), np.array([0, 1]), {}, "one label per feature row"),
        (np.random.default_rng(0).normal(size=(8, 2)), np.zeros(8), {}, "at least 2"),
        (np.random.default_rng(0).normal(size=(6, 2)), np.array([0, 0, 0, 1, 1, 1]), {}, "more than k = 3"),
        (np.random.default_rng(0).normal(size=(10, 2)), np.repeat([0, 1], 5), {"min_dist": 0.0}, "positive"),
        (np.random.default_rng(0).normal(size=(10, 2)), np.repeat([0, 1], 5), {"k": 0}, "positive integer"),
    ],
    ids=["inf", "shape_mismatch", "one_class", "all_classes_too_small", "zero_min_dist", "zero_k"],
)
def test_tmi_rejects_bad_input_with_a_fix(features, labels, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.compute("tmi", features, labels, **params)
