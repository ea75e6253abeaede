"""N-LEEP: golden values, seeding, float32 handled in float64, the LEEP-without-log step, bad inputs."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import metrics
from metrics.nleep import expected_empirical_prediction

# golden values: tests/metrics/test_golden.py checks every entry of expected.json for every metric


def test_nleep_default_seed_is_zero_and_documented_as_stochastic() -> None:
    info = metrics.info("nleep")
    assert info.stochastic
    assert info.params["random_state"] == 0
    features, labels = _blobs()
    assert metrics.compute("nleep", features, labels) == metrics.compute(
        "nleep", features, labels, random_state=0
    )


def _blobs(seed: int = 0, n_per_class: int = 30, n_classes: int = 3, d: int = 10, dtype: type = np.float64):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    features = rng.normal(size=(len(labels), d)) + 1.5 * rng.normal(size=(n_classes, d))[labels]
    return features.astype(dtype), labels


def test_nleep_float32_input_is_fitted_in_float64() -> None:
    features, labels = _blobs(dtype=np.float32)
    assert metrics.compute("nleep", features, labels) == metrics.compute(
        "nleep", features.astype(np.float64), labels
    )


def test_nleep_float32_with_many_components_does_not_fail() -> None:
    # 20 classes -> 100 mixture components on 200 float32 samples of spread ~100: a float32 mixture fit
    # (the reference's) fails here with "ill-defined empirical covariance"; the float64 fit must not.
    features, labels = _blobs(n_per_class=10, n_classes=20, d=16)
    features = (features * 100.0).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no ConvergenceWarning flood either
        value = metrics.compute("nleep", features, labels)
    assert 0.0 < value <= 1.0


def test_expected_empirical_prediction_equals_explicit_sums() -> None:
    rng = np.random.default_rng(1)
    theta = rng.dirichlet(np.ones(6), size=40)
    theta[:, 5] = 0.0  # a component with no mass: its conditional is 0, not NaN
    theta /= theta.sum(axis=1, keepdims=True)
    y = rng.integers(0, 3, size=40)
    joint = np.array([[theta[y == c, z].sum() / 40 for z in range(6)] for c in range(3)])
    expected = np.mean(
        [
            sum(theta[i, z] * joint[y[i], z] / joint[:, z].sum() for z in range(5))  # z = 5 contributes 0
            for i in range(40)
        ]
    )
    assert expected_empirical_prediction(theta, y, 3) == pytest.approx(expected, rel=1e-12)


def test_nleep_separable_classes_score_higher_than_mixed_labels() -> None:
    features, labels = _blobs()
    shuffled = np.random.default_rng(2).permutation(labels)
    assert metrics.compute("nleep", features, labels) > metrics.compute("nleep", features, shuffled)


def test_nleep_leaves_input_unmodified_and_ignores_label_names() -> None:
    features, labels = _blobs(dtype=np.float32)
    before = features.copy()
    features.flags.writeable = False
    value = metrics.compute("nleep", features, labels)
    np.testing.assert_array_equal(features, before)
    assert metrics.compute("nleep", features, np.array(["z", "y", "x"])[labels]) == pytest.approx(
        value, rel=1e-12
    )


def test_nleep_handles_constant_columns_and_wide_features() -> None:
    features, labels = _blobs(d=120)
    features[:, :10] = 2.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = metrics.compute("nleep", features, labels)
    assert 0.0 < value <= 1.0


@pytest.mark.parametrize(
    ("features", "labels", "params", "message"),
    [
        (np.array([[np.nan, 1.0], [1.0, 2.0], [0.0, 1.0]]), np.array([0, 1, 1]), {}, "NaN or inf"),
        (np.ones((4, 2)), np.array([0, 1]), {}, "one label per feature row"),
        (np.random.default_rng(0).normal(size=(20, 2)), np.zeros(20), {}, "at least 2"),
        (np.random.default_rng(0).normal(size=(8, 2)), np.repeat([0, 1], 4), {}, "lower component_ratio"),
        (np.ones((20, 3)), np.repeat([0, 1], 10), {}, "constant"),
        (
            np.random.default_rng(0).normal(size=(20, 2)),
            np.repeat([0, 1], 10),
            {"component_ratio": 0},
            "positive",
        ),
    ],
    ids=["nan", "shape_mismatch", "one_class", "too_few_samples", "all_constant", "zero_ratio"],
)
def test_nleep_rejects_bad_input_with_a_fix(features, labels, params: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.compute("nleep", features, labels, **params)
