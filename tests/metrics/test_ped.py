"""PED: golden values, the vectorised step against a naive C×C×D loop, fallback statistics, memory, bad inputs."""

from __future__ import annotations

import tracemalloc
import warnings

import numpy as np
import pytest

import metrics
import metrics.ped as ped_module
import metrics.sfda as sfda_module
from metrics.ped import moved_features, ped_step, standardising_stats

# golden values: tests/metrics/test_golden.py checks every entry of expected.json for every metric


def _naive_step(means: np.ndarray, radii: np.ndarray, nsigma: float, time_step: float):
    """METRICS.md step 2-3 with the explicit C×C×D difference array and a Python loop over pairs."""
    n_classes = len(means)
    diff = means[:, None, :] - means[None, :, :]  # the C×C×D array the reference builds
    shift = np.zeros_like(means)
    for a in range(n_classes):
        for b in range(a + 1, n_classes):
            dist = np.linalg.norm(diff[a, b])
            if dist == 0:
                continue
            overlap = max(nsigma * radii[a] + nsigma * radii[b] - dist, 0.0)
            move = min(0.5 * time_step**2 * overlap, overlap)
            shift[a] += move * diff[a, b] / dist
            shift[b] -= move * diff[a, b] / dist
    return shift, float(np.abs(shift).sum())


def test_ped_vectorised_step_equals_naive_pair_loop() -> None:
    rng = np.random.default_rng(0)
    means = rng.normal(size=(7, 5))
    means[3] = means[1]  # identical means: a 0/0 pair in the reference, skipped
    radii = rng.uniform(0.5, 3.0, size=7)
    shift, change = ped_step(means, radii, nsigma=0.6, time_step=0.1)
    naive_shift, naive_change = _naive_step(means, radii, 0.6, 0.1)
    assert np.any(naive_shift != 0)
    np.testing.assert_allclose(shift, naive_shift, rtol=1e-12, atol=1e-15)
    assert change == pytest.approx(naive_change, rel=1e-12)


def _naive_moved(features, labels, mean, std, nsigma=0.6, time_step=0.1, exit_ratio=0.5, max_steps=6):
    """The driver on the full sample array: standardise, step, move every sample, repeat."""
    x = features.astype(np.float64)
    first = None
    for _ in range(max_steps):
        xs = (x - mean) / std
        means = np.array([xs[labels == c].mean(axis=0) for c in range(labels.max() + 1)])
        radii = np.array([np.sqrt(xs[labels == c].var(axis=0).sum()) for c in range(labels.max() + 1)])
        shift, change = _naive_step(means, radii, nsigma, time_step)
        if first is None:
            first = change
            if change == 0:
                break
        elif change / first <= exit_ratio:
            break
        x = (xs + shift[labels]) * std + mean
    return x


def _overlapping(seed: int = 0, n_per_class: int = 30, n_classes: int = 4, d: int = 6):
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    features = rng.normal(size=(len(labels), d)) + 0.7 * rng.normal(size=(n_classes, d))[labels]
    return features.astype(np.float32), labels


def test_ped_dynamics_on_means_equal_moving_every_sample() -> None:
    features, labels = _overlapping()
    reference = np.random.default_rng(1).normal(size=(50, features.shape[1])) * 2.0
    mean, std = standardising_stats(reference)
    moved, accepted = moved_features(features, labels, 4, mean, std)
    assert accepted >= 2
    np.testing.assert_allclose(moved, _naive_moved(features, labels, mean, std), rtol=1e-10, atol=1e-10)


def test_ped_without_reference_uses_the_target_statistics() -> None:
    features, labels = _overlapping()
    own = metrics.compute("ped", features, labels)
    explicit = metrics.compute("ped", features, labels, reference_features=features)
    assert own == pytest.approx(explicit, rel=1e-12)


def test_ped_without_overlap_is_the_base_metric_on_unmoved_features() -> None:
    rng = np.random.default_rng(4)
    labels = np.repeat([0, 1, 2], 15)
    features = rng.normal(scale=0.1, size=(45, 3)) + 100.0 * np.eye(3)[labels]
    assert metrics.compute("ped", features, labels) == metrics.compute("sfda", features, labels)


def test_ped_leaves_features_and_reference_unmodified() -> None:
    features, labels = _overlapping()
    reference = np.random.default_rng(2).normal(size=(40, features.shape[1])).astype(np.float32)
    saved = features.copy(), reference.copy()
    features.flags.writeable = False
    reference.flags.writeable = False
    metrics.compute("ped", features, labels, reference_features=reference)
    np.testing.assert_array_equal(features, saved[0])
    np.testing.assert_array_equal(reference, saved[1])


def test_ped_is_invariant_to_label_names_and_sample_order() -> None:
    features, labels = _overlapping()
    value = metrics.compute("ped", features, labels)
    names = np.array(["d", "c", "b", "a"])[labels]
    order = np.random.default_rng(5).permutation(len(labels))
    assert metrics.compute("ped", features[order], names[order]) == pytest.approx(value, rel=1e-9)


def test_ped_nleep_base_is_seeded() -> None:
    features, labels = _overlapping(n_per_class=20, n_classes=3)
    first = metrics.compute("ped", features, labels, base="nleep", random_state=3)
    assert first == metrics.compute("ped", features, labels, base="nleep", random_state=3)
    assert 0.0 < first <= 1.0


def test_ped_step_memory_stays_far_below_the_pairwise_difference_array() -> None:
    # C = 120, D = 1000: the reference's C×C×D float64 array would be 115 MB.
    rng = np.random.default_rng(6)
    means = rng.normal(size=(120, 1000))
    radii = np.full(120, 30.0)
    tracemalloc.start()
    ped_step(means, radii, nsigma=0.6, time_step=0.1)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 8 * 1024 * 1024  # a few C×C and C×D arrays (≈ 1 MB each)


def test_ped_constant_columns_and_coincident_class_means_stay_finite_without_warnings() -> None:
    rng = np.random.default_rng(7)
    labels = np.repeat([0, 1, 2], 12)
    features = rng.normal(size=(36, 5))
    features[:, 1] = 3.0  # std clamped at eps, no division by zero
    features[labels == 1] -= features[labels == 1].mean(axis=0) - features[labels == 0].mean(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        value = metrics.compute("ped", features, labels)
    assert 0.0 <= value <= 1.0


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"base": "knn"}, "unknown base"),
        ({"reference_features": np.ones((5, 2))}, "same backbone"),
        ({"reference_features": np.full((5, 6), np.nan)}, "NaN or inf"),
        ({"max_steps": 0}, "at least 1"),
    ],
    ids=["unknown_base", "reference_dimension", "reference_nan", "no_steps"],
)
def test_ped_rejects_bad_parameters_with_a_fix(kwargs: dict, message: str) -> None:
    features, labels = _overlapping()
    with pytest.raises(ValueError, match=message):
        metrics.compute("ped", features, labels, **kwargs)


@pytest.mark.parametrize(
    ("features", "labels", "message"),
    [
        (np.array([[np.nan, 1.0], [1.0, 1.0], [0.0, 1.0]]), np.array([0, 1, 1]), "NaN or inf"),
        (np.ones((4, 2)), np.array([0, 1]), "one label per feature row"),
        (np.random.default_rng(0).normal(size=(6, 2)), np.zeros(6), "at least 2"),
        (np.zeros((0, 2)), np.array([]), "empty"),
    ],
    ids=["nan", "shape_mismatch", "one_class", "empty"],
)
def test_ped_rejects_bad_input_with_a_fix(features: np.ndarray, labels: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.compute("ped", features, labels)


def test_ped_sfda_on_displaced_chunks_equals_sfda_on_the_moved_features() -> None:
    features, labels = _overlapping()
    mean, std = standardising_stats(features)
    moved, accepted = moved_features(features, labels, 4, mean, std)
    assert accepted >= 1
    expected = metrics.compute("sfda", moved, labels)
    assert metrics.compute("ped", features, labels) == pytest.approx(expected, rel=1e-12)


def test_ped_with_sfda_base_never_holds_a_float64_copy_of_the_features(monkeypatch) -> None:
    # N×D float64 would be 24 MB; with 1024-row chunks the dynamics and SFDA need a small fraction of that.
    monkeypatch.setattr(ped_module, "_CHUNK_ROWS", 1024)
    monkeypatch.setattr(sfda_module, "_CHUNK_ROWS", 1024)
    features, labels = _overlapping(n_per_class=10_000, n_classes=3, d=100)
    tracemalloc.start()
    metrics.compute("ped", features, labels)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 0.4 * features.shape[0] * features.shape[1] * 8  # one float64 copy would be 1.0
