"""kNN: exactly a brute-force float64 leave-one-out search with the METRICS.md vote."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import metrics
from metrics.knn import Neighbours, neighbours, vote


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_library():
    # the test problems are small: on a shared 2-core machine, BLAS/OpenMP thread pools only oversubscribe
    # (measured: the same tests run ~10x slower with 2 threads per library under load)
    with threadpool_limits(limits=1):
        yield


def _brute_force(features: np.ndarray, labels: np.ndarray, k: int, metric: str, weights: str) -> float:
    """O(N²) float64 oracle written independently: full distance matrix, self excluded by index, the same vote."""
    x = features.astype(np.float64)
    if metric == "cosine":
        norms = np.linalg.norm(x, axis=1, keepdims=True)
        x = np.divide(x, norms, out=np.zeros_like(x), where=norms > 0)
    dist = np.sqrt(((x[:, None, :] - x[None, :, :]) ** 2).sum(axis=2))
    _, y = np.unique(labels, return_inverse=True)
    correct = 0
    for i in range(len(x)):
        others = np.array([j for j in np.argsort(dist[i], kind="stable") if j != i])[:k]
        d = dist[i, others]
        if weights == "distance":
            w = (d == 0).astype(float) if (d == 0).any() else 1.0 / d
        else:
            w = np.ones(k)
        totals: dict[int, float] = {}
        for label, weight in zip(y[others], w, strict=True):
            totals[label] = totals.get(label, 0.0) + weight
        best = max(totals.values())
        prediction = next(label for label in y[others] if totals[label] == best)
        correct += prediction == y[i]
    return correct / len(x)


@pytest.mark.parametrize("weights", ["uniform", "distance"])
@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("k", [1, 4, 15])
def test_matches_brute_force(k, metric, weights):
    rng = np.random.default_rng(k)
    labels = rng.integers(0, 5, size=150)
    features = (rng.normal(size=(150, 12)) + 0.8 * rng.normal(size=(5, 12))[labels]).astype(np.float32)
    expected = _brute_force(features, labels, k, metric, weights)
    assert metrics.compute("knn", features, labels, k=k, metric=metric, weights=weights) == pytest.approx(
        expected, abs=1e-12
    )


def test_matches_scikit_learn_neighbours():
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(7)
    features = rng.normal(size=(300, 20))
    idx, dist = neighbours(features, 10, metric="l2")
    sk_dist, sk_idx = NearestNeighbors(n_neighbors=11, algorithm="brute").fit(features).kneighbors(features)
    np.testing.assert_array_equal(
        idx, sk_idx[:, 1:]
    )  # no duplicates here, so sklearn's self is at position 0
    # rows that needed no float64 re-ranking keep float32-accurate distances
    np.testing.assert_allclose(dist, sk_dist[:, 1:], rtol=1e-5)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_float32_rows_agree_with_float64_reranking(metric):
    rng = np.random.default_rng(11)
    features = (rng.normal(size=(400, 24)) * 3.0 + 1.0).astype(np.float32)
    fast = Neighbours(features, 7, metric=metric)
    assert not fast.exact.all()  # most rows are unambiguous in float32
    exact = Neighbours(features, 7, metric=metric)
    exact.make_exact(np.arange(400))
    np.testing.assert_array_equal(fast.indices, exact.indices)
    np.testing.assert_allclose(fast.distances, exact.distances, rtol=1e-5)


def test_near_ties_are_reranked_in_float64():
    # two candidates closer together than float32 can tell apart: the float64 order must win
    found = Neighbours(_near_tie_points(), 2, metric="l2")
    assert found.exact[0]
    assert found.indices[0].tolist() == [2, 1]  # float32 sees a tie and would keep index order [1, 2]


def _near_tie_points() -> np.ndarray:
    # sample 0's two nearest (1 and 2) are closer together than float32 can tell apart; the rest are far
    base = np.zeros((6, 3))
    base[1] = [1.0 + 1e-9, 0.0, 0.0]
    base[2] = [1.0, 0.0, 0.0]
    base[3:] = [[5.0, 0, 0], [6.0, 0, 0], [7.0, 0, 0]]
    return base


def test_certain_set_with_uncertain_order_is_not_reranked_when_the_vote_is_clear():
    features = _near_tie_points()
    found = Neighbours(features, 2, metric="l2", exact_order=False)
    assert found.order_unclear[0] and not found.exact[0]  # the set {1, 2} is certain; only its order is not
    labels = np.array([4, 4, 4, 9, 9, 9])  # 1 and 2 share a class: the order cannot change sample 0's vote
    expected = _brute_force(features, labels, 2, "l2", "uniform")
    assert metrics.compute("knn", features, labels, k=2, metric="l2") == expected


@pytest.mark.parametrize("weights", ["uniform", "distance"])
def test_tied_vote_with_uncertain_order_follows_the_float64_order(weights):
    features = _near_tie_points()
    # sample 0's vote ties between 1's class and 2's class; float64 puts 2 first, so 0 is predicted as 2's class
    labels = np.array([4, 7, 4, 9, 9, 9])
    expected = _brute_force(features, labels, 2, "l2", weights)
    assert metrics.compute("knn", features, labels, k=2, metric="l2", weights=weights) == expected
    swapped = np.array([4, 4, 7, 9, 9, 9])  # now the float32 order would be right and float64 wrong
    assert metrics.compute("knn", features, swapped, k=2, metric="l2", weights=weights) == _brute_force(
        features, swapped, 2, "l2", weights
    )


def test_duplicates_are_excluded_by_index_not_distance():
    # every point appears twice: its twin (distance 0) must count as a neighbour, the point itself must not
    rng = np.random.default_rng(8)
    base = rng.normal(size=(30, 5))
    features = np.vstack([base, base])
    labels = np.concatenate([np.arange(30) % 3, np.arange(30) % 3])
    assert metrics.compute("knn", features, labels, k=1) == 1.0
    idx, dist = neighbours(features, 1, metric="l2")
    np.testing.assert_array_equal(idx[:, 0], np.concatenate([np.arange(30, 60), np.arange(30)]))
    assert (dist == 0).all()


def test_all_zero_rows_stay_zero_under_cosine():
    # zero rows are at distance 0 from each other and 1 from every unit vector: they find each other first
    features = np.vstack(
        [np.zeros((4, 3)), np.eye(3)[[0, 0, 1, 1, 2, 2]] * [[1.0], [2.0], [1.0], [3.0], [1.0], [5.0]]]
    )
    labels = np.array([9, 9, 9, 9, 0, 0, 1, 1, 2, 2])
    assert metrics.compute("knn", features, labels, k=1) == 1.0


def test_zero_distance_neighbours_outvote_the_rest_with_distance_weights():
    codes = np.array([[0, 1, 1, 1]])
    dist = np.array([[0.0, 0.1, 0.1, 0.1]])
    assert vote(codes, dist, 2, weights="distance")[0] == 0
    assert vote(codes, dist, 2, weights="uniform")[0] == 1


def test_tie_goes_to_the_class_met_first_in_the_neighbour_list():
    codes = np.array([[2, 0, 0, 2], [0, 2, 2, 0]])
    dist = np.array([[0.1, 0.2, 0.3, 0.4], [0.1, 0.2, 0.3, 0.4]])
    np.testing.assert_array_equal(vote(codes, dist, 3, weights="uniform"), [2, 0])


@pytest.mark.parametrize("k", [0, 10, 11, -1, 2.5])
def test_k_out_of_range_raises_with_fix(k):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="1 <= k < N.*smaller k"):
        metrics.compute("knn", rng.normal(size=(10, 3)), np.arange(10) % 2, k=k)


@pytest.mark.parametrize(("param", "value"), [("metric", "manhattan"), ("weights", "gaussian")])
def test_unknown_options_raise(param, value):
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="use one of"):
        metrics.compute("knn", rng.normal(size=(30, 3)), np.arange(30) % 2, **{param: value})


def test_queries_span_several_search_blocks(monkeypatch):
    import metrics.knn as knn_module

    rng = np.random.default_rng(9)
    labels = rng.integers(0, 3, size=200)
    features = rng.normal(size=(200, 6)) + rng.normal(size=(3, 6))[labels]
    expected = metrics.compute("knn", features, labels, k=5)
    monkeypatch.setattr(knn_module, "_QUERY_BLOCK", 17)
    monkeypatch.setattr(knn_module, "_RERANK_BYTES", 5 * 14 * 6 * 8)
    assert metrics.compute("knn", features, labels, k=5) == expected
