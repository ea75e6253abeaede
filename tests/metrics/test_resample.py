"""compute_resampled / resampled_pool_terms: every fast path equals scoring each subset in turn."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import metrics
import metrics.resample_knn as resample_knn
import metrics.resample_sfda as resample_sfda
from analyzer.ranking import stratified_subsamples


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_library():
    with threadpool_limits(limits=1):  # small problems on a shared 2-core machine: threads only oversubscribe
        yield


def _problem(seed: int, n: int, d: int, c: int, *, offset: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, c, size=n)
    features = rng.normal(size=(n, d)) + 0.8 * rng.normal(size=(c, d))[labels] + offset
    return features.astype(np.float32), labels


@pytest.mark.parametrize(
    ("k", "metric", "weights"),
    [(20, "cosine", "uniform"), (5, "l2", "distance"), (1, "l2", "uniform"), (15, "cosine", "distance")],
)
def test_knn_fast_path_equals_per_subset_scoring_exactly(k, metric, weights):
    features, labels = _problem(k, 240, 10, 6)
    features[5] = features[7]  # exact duplicates: excluded by index, re-ranked in float64
    features[20] = 0.0  # a zero row stays zero under cosine
    subsets = stratified_subsamples(labels, 12, 0.8, seed=k)
    fast = metrics.compute_resampled("knn", features, labels, subsets, k=k, metric=metric, weights=weights)
    slow = metrics.compute_resampled(
        "knn", features, labels, subsets, fast=False, k=k, metric=metric, weights=weights
    )
    assert fast == slow


def test_knn_rows_whose_filtered_list_is_too_short_are_scanned_exactly(monkeypatch):
    calls = []
    real_scan = resample_knn._scan

    def counting_scan(*args, **kwargs):
        calls.append(len(args[1]))
        return real_scan(*args, **kwargs)

    monkeypatch.setattr(resample_knn, "_wide", lambda n, k, subsets: k + 1 + 8)  # no room for left-out rows
    monkeypatch.setattr(resample_knn, "_scan", counting_scan)
    features, labels = _problem(3, 200, 8, 4)
    subsets = stratified_subsamples(labels, 6, 0.5, seed=3)
    fast = metrics.compute_resampled("knn", features, labels, subsets, k=10)
    assert sum(calls) > 0  # the fallback did run
    assert fast == metrics.compute_resampled("knn", features, labels, subsets, fast=False, k=10)


# down-dated D×D Gram (D = 1: no tridiagonal form); N×N Gram (N ≤ D)
@pytest.mark.parametrize(("n", "d"), [(400, 40), (200, 1), (120, 150)])
def test_logme_fast_path_matches_per_subset_scoring_to_rounding(n, d):
    features, labels = _problem(1, n, d, 5, offset=3.0)
    subsets = stratified_subsamples(labels, 8, 0.8, seed=1)
    subsets.append(np.flatnonzero(labels != 0))  # a class missing from a subset: the mean is over its classes
    fast = metrics.compute_resampled("logme", features, labels, subsets)
    slow = metrics.compute_resampled("logme", features, labels, subsets, fast=False)
    np.testing.assert_allclose(fast, slow, rtol=1e-10)


def test_logme_fast_path_on_rank_deficient_features_gives_the_direct_value():
    features, labels = _problem(2, 300, 30, 4)
    features = np.c_[features, features[:, :6], features[:, :3] + features[:, 3:6]]  # dependent columns
    subsets = stratified_subsamples(labels, 6, 0.8, seed=2)
    fast = metrics.compute_resampled("logme", features, labels, subsets)
    assert fast == metrics.compute_resampled("logme", features, labels, subsets, fast=False)


@pytest.mark.parametrize(("n", "d"), [(300, 72), (150, 200)])  # down-dated D×D scatter; N×N dual PCA
def test_ncti_terms_fast_path_matches_per_subset_scoring_to_rounding(n, d):
    features, labels = _problem(4, n, d, 5, offset=5.0)
    subsets = stratified_subsamples(labels, 5, 0.8, seed=4)
    fast = metrics.resampled_pool_terms("ncti", features, labels, subsets)
    slow = metrics.resampled_pool_terms("ncti", features, labels, subsets, fast=False)
    for got, want in zip(fast, slow, strict=True):
        assert got.keys() == want.keys()
        for name in want:
            assert got[name] == pytest.approx(want[name], rel=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])  # float32: the metric rounds its mixed rows to it
@pytest.mark.parametrize("scale", [0.05, 0.12, 1.0])  # the shrinkage λ = exp(-5ρ) from large to 1e-10
def test_sfda_fast_path_in_the_span_of_the_samples_matches_per_subset_scoring(dtype, scale):
    features, labels = _problem(8, 120, 300, 5)
    features = (features * scale).astype(dtype)
    subsets = stratified_subsamples(labels, 5, 0.8, seed=8)
    fast = metrics.compute_resampled("sfda", features, labels, subsets)
    slow = metrics.compute_resampled("sfda", features, labels, subsets, fast=False)
    np.testing.assert_allclose(fast, slow, rtol=1e-9)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale", [0.05, 0.12, 1.0])
def test_sfda_fast_path_with_more_samples_than_dimensions_matches_per_subset_scoring(
    monkeypatch, dtype, scale
):
    features, labels = _problem(9, 400, 40, 5, offset=2.0)
    features = (features * scale).astype(dtype)
    subsets = stratified_subsamples(labels, 4, 0.8, seed=9)
    subsets.append(
        np.flatnonzero(labels != 0)
    )  # a whole class left out: the down-date keeps the other classes
    subsets.append(
        np.r_[subsets[0], subsets[0][:5]]
    )  # repeated samples: first-fit statistics computed directly
    subsets.append(np.arange(150))  # fewer than half the samples kept: computed directly
    subsets.append(np.arange(30))  # fewer samples than dimensions in a set of more
    down_dated = []
    real_left_out = resample_sfda._left_out
    monkeypatch.setattr(
        resample_sfda, "_left_out", lambda n, idx: down_dated.append(real_left_out(n, idx)) or down_dated[-1]
    )
    fast = metrics.compute_resampled("sfda", features, labels, subsets)
    assert (
        sum(rest is not None for rest in down_dated) == 5
    )  # the stratified subsets and the one missing a class
    slow = metrics.compute_resampled("sfda", features, labels, subsets, fast=False)
    np.testing.assert_allclose(fast, slow, rtol=1e-9)


@pytest.mark.parametrize("name", ["logme", "sfda"])
def test_down_dated_fast_paths_accept_mixed_type_labels_that_cannot_be_sorted(name):
    features, codes = _problem(10, 300, 20, 3, offset=1.0)
    labels = np.array([[1, "1", "b"][c] for c in codes], dtype=object)  # ordered by text, not comparable
    subsets = stratified_subsamples(codes, 3, 0.8, seed=10)
    subsets.append(np.flatnonzero(codes != 1))  # the class "1" left out: the others keep their order
    fast = metrics.compute_resampled(name, features, labels, subsets)
    slow = metrics.compute_resampled(name, features, labels, subsets, fast=False)
    np.testing.assert_allclose(fast, slow, rtol=1e-10)


def test_a_subset_the_metric_rejects_gives_none_and_the_rest_are_scored():
    features, labels = _problem(5, 120, 70, 3)
    one_class = np.flatnonzero(labels == 0)
    good = np.arange(100)
    for name in ("knn", "logme", "sfda"):
        values = metrics.compute_resampled(name, features, labels, [one_class, good])
        assert values[0] is None
        assert values[1] == pytest.approx(metrics.compute(name, features[good], labels[good]), rel=1e-10)
    terms = metrics.resampled_pool_terms("ncti", features, labels, [good[:40], good])
    assert terms[0] is None  # fewer than 64 samples
    assert terms[1] == pytest.approx(metrics.pool_terms("ncti", features[good], labels[good]), rel=1e-9)


def test_inputs_are_not_modified():
    features, labels = _problem(6, 200, 70, 4)
    subsets = stratified_subsamples(labels, 3, 0.8, seed=6)
    before = (features.copy(), labels.copy(), [s.copy() for s in subsets])
    for name in ("knn", "logme", "sfda"):
        metrics.compute_resampled(name, features, labels, subsets)
    metrics.resampled_pool_terms("ncti", features, labels, subsets)
    np.testing.assert_array_equal(features, before[0])
    np.testing.assert_array_equal(labels, before[1])
    for s, b in zip(subsets, before[2], strict=True):
        np.testing.assert_array_equal(s, b)


def test_pool_metrics_and_bad_subsets_are_refused_with_the_right_entry_point():
    features, labels = _problem(7, 100, 8, 3)
    with pytest.raises(ValueError, match="resampled_pool_terms"):
        metrics.compute_resampled("ncti", features, labels, [np.arange(80)])
    with pytest.raises(ValueError, match="outside"):
        metrics.compute_resampled("knn", features, labels, [np.arange(101)])
    with pytest.raises(ValueError, match="no parameter"):
        metrics.compute_resampled("knn", features, labels, [np.arange(80)], kk=3)
