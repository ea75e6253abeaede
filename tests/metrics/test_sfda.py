"""SFDA: golden values, a literal numpy/scipy transcription of METRICS.md, no mutation, bad inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import scipy.linalg

import metrics
import metrics.sfda as sfda_module

# golden values: tests/metrics/test_golden.py checks every entry of expected.json for every metric


def _naive_sfda(features: np.ndarray, labels: np.ndarray) -> float:
    """METRICS.md's steps taken literally: per-class np.cov, S_t, S_b, generalised eigh, in-place ConfMix."""
    x = np.array(features)  # private copy: the in-place write below mimics the reference on it
    classes, y = np.unique(labels, return_inverse=True)
    n_classes, d = len(classes), x.shape[1]
    priors = np.bincount(y) / len(y)

    def shrink(s: np.ndarray, lam: float) -> np.ndarray:
        return (1 - lam) * s + lam * np.trace(s) / d * np.eye(d)

    def fit(data: np.ndarray, lam: float | None):
        means = np.array([data[y == c].astype(np.float64).mean(axis=0) for c in range(n_classes)])
        s_w = sum(priors[c] * np.cov(data[y == c].T, bias=True) for c in range(n_classes))
        if lam is None:
            v = s_w.sum(axis=1)
            for _ in range(3):
                u = s_w @ v / np.linalg.norm(s_w @ v)
                v = s_w @ u / np.linalg.norm(s_w @ u)
            lam = max(np.exp(-5 * (v @ s_w @ u)), 1e-10)
        s_t = shrink(np.cov(data.T, bias=True), lam)
        s_w_shrunk = shrink(s_w, lam)
        evals, evecs = scipy.linalg.eigh(s_t - s_w_shrunk, s_w_shrunk)
        evecs = evecs[:, np.argsort(evals)[::-1]]
        coef = means @ evecs @ evecs.T
        intercept = -0.5 * np.diag(means @ coef.T) + np.log(priors)
        logits = data.astype(np.float64) @ coef.T + intercept
        probs = np.exp(logits - logits.max(axis=1, keepdims=True))
        return probs / probs.sum(axis=1, keepdims=True), means, lam

    probs, means, lam = fit(x, None)
    soft = np.exp(probs) / np.exp(probs).sum(axis=1, keepdims=True)
    others = (means.sum(axis=0) - means) / (n_classes - 1)
    for c in range(n_classes):
        rows = np.flatnonzero(y == c)
        p = soft[rows, c][:, None]
        x[rows] = p * x[rows] + (1 - p) * others[c]  # written in x's dtype, like the reference
    probs, _, _ = fit(x, lam)
    return float(probs[np.arange(len(y)), y].mean())


def _overlapping_classes(dtype: type, n_per_class: int = 40, d: int = 12, seed: int = 0):
    rng = np.random.default_rng(seed)
    labels = np.repeat([3, 7, 11, 20], n_per_class)
    centres = rng.normal(scale=0.6, size=(4, d))
    features = rng.normal(size=(len(labels), d)) * 0.8 + centres[np.searchsorted([3, 7, 11, 20], labels)]
    return features.astype(dtype), labels


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_sfda_equals_literal_transcription_with_eigendecomposition(dtype: type) -> None:
    # Checks the W·Wᵀ = S_w'⁻¹ shortcut and the float32 rounding of the mixed features against the literal steps.
    features, labels = _overlapping_classes(dtype)
    value = metrics.compute("sfda", features, labels)
    assert 0.3 < value < 0.999  # a non-saturated case, so the comparison below is meaningful
    # rel 2e-10: skipping the float32 rounding of the mixed features moves this case by 2.6e-9
    assert value == pytest.approx(_naive_sfda(features, labels), rel=2e-10)


def test_sfda_row_chunking_does_not_change_the_value(monkeypatch: pytest.MonkeyPatch) -> None:
    features, labels = _overlapping_classes(np.float64)
    whole = metrics.compute("sfda", features, labels)
    monkeypatch.setattr(sfda_module, "_CHUNK_ROWS", 7)
    assert metrics.compute("sfda", features, labels) == pytest.approx(whole, rel=1e-12)


def test_sfda_leaves_float32_input_unmodified() -> None:
    # The reference writes the mixed features into the caller's array; this one must not.
    features, labels = _overlapping_classes(np.float32)
    before, labels_before = features.copy(), labels.copy()
    features.flags.writeable = False  # a write would raise
    metrics.compute("sfda", features, labels)
    np.testing.assert_array_equal(features, before)
    np.testing.assert_array_equal(labels, labels_before)


def test_sfda_is_invariant_to_renaming_and_reordering() -> None:
    features, labels = _overlapping_classes(np.float64)
    value = metrics.compute("sfda", features, labels)
    names = np.array(["eel", "cat", "dog", "ant"])[np.searchsorted([3, 7, 11, 20], labels)]
    assert metrics.compute("sfda", features, names) == pytest.approx(value, rel=1e-10)
    order = np.random.default_rng(1).permutation(len(labels))
    assert metrics.compute("sfda", features[order], labels[order]) == pytest.approx(value, rel=1e-10)


def test_sfda_scores_separable_classes_above_overlapping_ones() -> None:
    features, labels = _overlapping_classes(np.float64)
    codes = np.searchsorted([3, 7, 11, 20], labels)
    separated = features + 5.0 * np.eye(4, features.shape[1])[codes]
    assert metrics.compute("sfda", separated, labels) > metrics.compute("sfda", features, labels)


@pytest.mark.parametrize(
    "case",
    ["fewer_samples_than_dimensions", "constant_column", "single_sample_class"],
)
def test_sfda_edge_cases_give_finite_probabilities_without_warnings(case: str) -> None:
    rng = np.random.default_rng(2)
    labels = np.repeat([0, 1, 2], 10)
    features = rng.normal(size=(30, 8)) + labels[:, None]
    if case == "fewer_samples_than_dimensions":
        features = rng.normal(size=(30, 100)) + labels[:, None]
    elif case == "constant_column":
        features[:, 2] = 4.0
    else:
        labels = np.append(labels, 3)
        features = np.vstack([features, rng.normal(size=(1, 8))])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = metrics.compute("sfda", features, labels)
    assert 0.0 <= value <= 1.0


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.array([[0.0, 1.0], [np.nan, 1.0], [1.0, 2.0]]), np.array([0, 1, 1]), "NaN or inf"),
        (np.ones((4, 3)), np.array([0, 1, 1]), "one label per feature row"),
        (np.arange(12.0).reshape(4, 3), np.zeros(4), "at least 2"),
        (np.zeros((4, 3)), np.array([0, 0, 1, 1]), "no within-class variation"),
        (np.zeros((0, 3)), np.array([]), "empty"),
    ],
    ids=["nan", "shape_mismatch", "one_class", "all_constant", "empty"],
)
def test_sfda_rejects_bad_input_with_a_fix(features: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.compute("sfda", features, labels)


def test_sfda_registry_declares_only_the_invariances_it_has() -> None:
    info = metrics.info("sfda")
    assert "feature_scale" not in info.properties  # λ = exp(-5ρ) depends on the scale
    assert {"sample_order", "label_renaming", "unmodified"} <= info.properties
