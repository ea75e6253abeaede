"""kNN: leave-one-out k-nearest-neighbour accuracy of the target labels in feature space.

Card
----
- Source: no single paper; the common kNN evaluation of self-supervised features (k = 20, cosine), as
  ``../shared/reference/METRICS.md`` § knn defines it. Oracle: scikit-learn's exact brute-force neighbour search
  plus the vote below.
- Formula: for every sample, its k nearest *other* samples (the sample itself is excluded by index, not by
  distance, because real features have exact duplicates); the prediction is the vote of their labels; kNN = fraction
  of samples predicted correctly.
  ``metric="cosine"``: L2-normalise every row (an all-zero row stays zero), then Euclidean distance; ``"l2"``:
  Euclidean distance on the raw features. ``weights="uniform"``: one vote each; ``"distance"``: weight 1/dist,
  except that when some neighbours are at distance 0 only those vote, one each. Ties between classes go to the
  tied class that appears first in the neighbour list ordered by distance, so the value does not depend on how the
  classes are named.
- Direction: higher = more transferable; in [0, 1].
- Inputs: ``features`` N×D, class ``labels`` (N,) of any hashable kind (≥ 2 classes); ``k`` (1 ≤ k < N).
- Failure modes: NaN/inf, shape mismatch, < 2 classes, k ≥ N, unknown metric/weights -> ValueError. A class with one
  sample is valid (that sample can only be misclassified). Constant columns and N < D are harmless.
- Complexity: exact search on faiss (IndexFlatL2; a GPU index when faiss sees a GPU): one N×N×D float32 product
  done blockwise inside faiss, memory O(N·k) beyond the features and one float32 copy of the searched space (never
  the N×N matrix). Rows whose float32 result is ambiguous (below) are re-ranked in float64, O((k+m)·D) each.

Exactness: faiss computes squared distances in float32 as ‖x‖² + ‖y‖² − 2x·y; rounding can swap neighbours whose
distances differ by less than its error and never gives an exact 0 for duplicates. For each query the error is
bounded by ``τ = 3·√D·eps32·(‖q‖² + max_j ‖c_j‖²)`` (measured errors stay below 0.52 of ``√D·eps32·(‖q‖² + ‖c‖²)``;
see ``_TAU_FACTOR``). A row is
recomputed in float64 (distances ‖x − y‖ to its k + 1 + m candidates, m = ``_MARGIN``, stable sort, self removed by
index) when its neighbour *set* is in doubt: its nearest squared distance is ≤ τ (possible duplicates) or its k-th
and (k+1)-th are within τ. The order inside the set matters to the vote only through ties, so a row whose set is
certain is also recomputed when two of its k nearest are within τ *and* its uniform vote ties between classes, or
(``weights="distance"``) when its two best class totals are closer than their error bound. Every other row's vote is
already the float64 vote, so the result equals a float64 brute-force search unless the float32 error exceeds τ or m
ranks. (:func:`neighbours` re-ranks every row whose order is in doubt, since its callers see the order.)
For cosine an L2 index on the normalised rows is used rather than an inner-product index: the two rank unit
vectors identically, but only L2 ranks an all-zero row (kept zero by the normalisation) correctly.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import faiss
import numpy as np

from metrics._registry import register_metric
from metrics._validation import EncodedLabels, NotApplicable, check_features, encode_labels

#: τ = _TAU_FACTOR·√D·eps32·(‖q‖² + max‖c‖²) bounds faiss's float32 squared-distance error. Measured maximum
#: errors (float64 truth, 5 000 Gaussian-class samples, both metrics): 0.52 of √D·eps32·(‖q‖² + ‖c‖²) at D = 64,
#: 0.17 at D = 768, 0.07 at D = 2048. A gap between two distances carries two errors, so 3 leaves a 2.9× margin at
#: D = 64 and more at larger D.
_TAU_FACTOR = 3.0
#: extra candidates fetched beyond k + 1 and re-ranked in float64 (see "Exactness" above)
_MARGIN = 8
#: queries per faiss search call (faiss blocks its own N×N distance computation internally)
_QUERY_BLOCK = 2048
#: database rows per float32 matrix product inside faiss's exact search (faiss's default is 1024; 4096 makes each
#: product large enough for BLAS to run near its peak: 6 % faster at N = 50 000, D = 2048 here)
_FAISS_DATABASE_BLOCK = 4096
#: bytes of the float64 (rows, k+1+m, D) difference array used to re-rank candidates exactly; small enough to stay
#: in cache (2 MiB re-ranks twice as fast as 32 MiB here)
_RERANK_BYTES = 2 * 2**20

_METRICS = ("cosine", "l2")
_WEIGHTS = ("uniform", "distance")


def _row_norms(features: np.ndarray) -> np.ndarray:
    """Float64 L2 norm of every row (N,), computed in row chunks without a float64 copy of all features."""
    out = np.empty(features.shape[0])
    for start in range(0, features.shape[0], _QUERY_BLOCK):
        chunk = features[start : start + _QUERY_BLOCK].astype(np.float64, copy=False)
        out[start : start + _QUERY_BLOCK] = np.sqrt(np.einsum("nd,nd->n", chunk, chunk))
    return out


class _Space:
    """The searched space, row by row, in float64: raw rows (l2) or unit rows (cosine; zero rows stay zero)."""

    def __init__(self, features: np.ndarray, metric: str) -> None:
        self.features = features
        norms = _row_norms(features)
        if metric == "cosine":
            self.scale: np.ndarray | None = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
            self.sq_norms = (norms * self.scale) ** 2  # 1, or 0 for a zero row
        else:
            self.scale = None
            self.sq_norms = norms**2

    def rows(self, index: np.ndarray) -> np.ndarray:
        """Float64 rows of the space at integer ``index`` (any shape); a fresh array the caller may overwrite."""
        x = self.features[index].astype(np.float64, copy=False)  # fancy indexing copies, so in-place is safe
        if self.scale is not None:
            x *= self.scale[index][..., None]
        return x


def _index(space: _Space) -> tuple[faiss.Index, np.ndarray]:
    """An exact L2 index holding the float32 searched space, and a float32 (N, D) array of that space to query
    with. On CPU the array is a view of the index's own storage, so the space is held once, not twice."""
    n, d = space.features.shape
    cpu = faiss.IndexFlatL2(d)
    for start in range(0, n, _QUERY_BLOCK):
        rows = space.rows(np.arange(start, min(start + _QUERY_BLOCK, n)))
        cpu.add(np.ascontiguousarray(rows, dtype=np.float32))
    stored = faiss.rev_swig_ptr(cpu.get_xb(), n * d).reshape(n, d)
    if faiss.get_num_gpus() > 0:  # pragma: no cover - only on a machine with faiss-gpu and a GPU
        return faiss.index_cpu_to_all_gpus(cpu), stored.copy()
    # the view stays valid while `cpu` lives; the caller keeps both for the whole search
    return cpu, stored


@contextmanager
def _database_block(rows: int) -> Iterator[None]:
    """Set faiss's global BLAS database block size for one search, and restore the caller's value afterwards."""
    previous = faiss.cvar.distance_compute_blas_database_bs
    faiss.cvar.distance_compute_blas_database_bs = rows
    try:
        yield
    finally:
        faiss.cvar.distance_compute_blas_database_bs = previous


def _drop_self(found: np.ndarray, values: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Remove each query's own index from its candidates (by index, never by distance), keeping the order; when
    the query is not among them (many exact duplicates), the last candidate goes instead."""
    order = np.argsort(np.where(found == rows[:, None], np.inf, values), axis=1, kind="stable")[:, :-1]
    return np.take_along_axis(found, order, axis=1), np.take_along_axis(values, order, axis=1)


def _exact(space: _Space, rows: np.ndarray, found: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 re-ranking of ``found`` (rows, fetch) candidates: ‖x − y‖ directly, stable sort, self removed."""
    out_idx = np.empty((len(rows), k), dtype=np.int64)
    out_dist = np.empty((len(rows), k))
    step = max(1, _RERANK_BYTES // (found.shape[1] * space.features.shape[1] * 8))
    for sub in range(0, len(rows), step):
        q = rows[sub : sub + step]
        cand = found[sub : sub + step]
        diff = space.rows(cand)
        diff -= space.rows(q)[:, None, :]
        dist = np.sqrt(np.einsum("qjd,qjd->qj", diff, diff))
        cand, dist = _drop_self(cand, dist, q)
        out_idx[sub : sub + step] = cand[:, :k]
        out_dist[sub : sub + step] = dist[:, :k]
    return out_idx, out_dist


def search(space: _Space, fetch: int) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """faiss's exact float32 search of every row of ``space`` for its ``fetch`` nearest rows (itself included), in
    query blocks: yields ``(start, stop, squared distances (rows, fetch) float32, indices (rows, fetch) int64)``."""
    index, space32 = _index(space)
    n = space.features.shape[0]
    for start in range(0, n, _QUERY_BLOCK):
        stop = min(start + _QUERY_BLOCK, n)
        with _database_block(_FAISS_DATABASE_BLOCK):
            sq32, found = index.search(space32[start:stop], fetch)
        yield start, stop, sq32, found


def _blocks_of(sq: np.ndarray, found: np.ndarray) -> Iterator[tuple[int, int, np.ndarray, np.ndarray]]:
    """Precomputed candidates in the same query blocks as :func:`search` yields them."""
    for start in range(0, sq.shape[0], _QUERY_BLOCK):
        stop = min(start + _QUERY_BLOCK, sq.shape[0])
        yield start, stop, sq[start:stop], found[start:stop]


class Neighbours:
    """k nearest other samples of every sample, exact in float64 where float32 could be wrong.

    Attributes: ``indices`` and ``distances`` (N, k), nearest first; ``exact`` (N,) True for rows recomputed in
    float64; ``tau`` (N,) each row's float32 squared-distance error bound; ``nearest_sq`` (N,) the smallest squared
    distance (bounds the error of the 1/dist weights); ``order_unclear`` (N,) True where two of the k nearest are
    within τ of each other, so their float32 order may be wrong (the set is right unless the row is re-ranked).

    With ``exact_order=False`` only rows whose neighbour *set* is in doubt (a possible duplicate, or the k-th and
    (k+1)-th within τ) are re-ranked; rows whose set is certain but whose order is not keep the float32 order. A
    vote that depends on the order only through a tie between classes re-ranks those rows itself (at D = 2048 about
    half of all rows have some inner gap below τ, but few of them also have a tied vote).
    """

    def __init__(
        self,
        features: np.ndarray,
        k: int,
        *,
        metric: str = "cosine",
        exact_order: bool = True,
        candidates: tuple[np.ndarray, np.ndarray] | None = None,
        force_exact: np.ndarray | None = None,
    ) -> None:
        """``candidates``: precomputed ``(squared distances, indices)`` (N, min(k + 1 + m, N)) of each row's nearest
        samples *including itself*, nearest first, as :func:`search` returns them (the bootstrap's fast path
        filters one search over a superset); None searches here. ``force_exact`` (N,) bool: rows re-ranked in
        float64 whatever their bounds say (candidates found some other way)."""
        if metric not in _METRICS:
            raise ValueError(f"unknown knn metric {metric!r}; use one of {', '.join(_METRICS)}")
        n, d = features.shape
        self.k = k
        self.space = _Space(features, metric)
        fetch = min(k + 1 + _MARGIN, n)
        self.found = np.empty((n, fetch), dtype=np.int64)
        self.indices = np.empty((n, k), dtype=np.int64)
        self.distances = np.empty((n, k))
        self.tau = np.empty(n)
        self.nearest_sq = np.empty(n)
        set_unclear = np.zeros(n, dtype=bool) if force_exact is None else force_exact.astype(bool)
        self.order_unclear = np.zeros(n, dtype=bool)
        eps = np.finfo(np.float32).eps
        blocks = search(self.space, fetch) if candidates is None else _blocks_of(*candidates)
        for start, stop, sq32, found in blocks:
            rows = np.arange(start, stop)
            # faiss pads with -1 only when fewer than `fetch` vectors exist, which fetch <= n rules out
            self.found[start:stop] = found
            cand, sq = _drop_self(found.astype(np.int64), sq32.astype(np.float64), rows)
            tau = (
                _TAU_FACTOR
                * np.sqrt(d)
                * eps
                * (self.space.sq_norms[rows] + self.space.sq_norms[cand].max(axis=1))
            )
            head = sq[:, : k + 1]
            close = np.diff(head, axis=1) <= tau[:, None]
            unclear = head[:, 0] <= tau  # a duplicate (or the sample itself) may be hidden among the nearest
            # the set is in doubt when the (k+1)-th is within τ of the k-th
            if head.shape[1] > k:
                unclear |= close[:, k - 1]
            else:  # k = N - 1: no candidate beyond the k-th to compare with; recompute
                unclear[:] = True
            set_unclear[start:stop] |= unclear
            self.order_unclear[start:stop] = close[:, : k - 1].any(axis=1)
            self.indices[start:stop] = cand[:, :k]
            self.distances[start:stop] = np.sqrt(np.maximum(sq[:, :k], 0.0))
            self.tau[start:stop] = tau
            self.nearest_sq[start:stop] = np.maximum(head[:, 0], 0.0)
        self.exact = np.zeros(n, dtype=bool)
        self.make_exact(np.flatnonzero(set_unclear | (self.order_unclear if exact_order else False)))

    def make_exact(self, rows: np.ndarray) -> None:
        """Recompute ``rows`` (indices into the samples) in float64."""
        rows = rows[~self.exact[rows]]
        if len(rows):
            self.indices[rows], self.distances[rows] = _exact(self.space, rows, self.found[rows], self.k)
            self.exact[rows] = True


def neighbours(features: np.ndarray, k: int, *, metric: str = "cosine") -> tuple[np.ndarray, np.ndarray]:
    """The k nearest other samples of every sample: ``(indices, distances)``, both (N, k), nearest first; the sample
    itself is excluded by index. ``features`` must already be checked (2-D, finite) and ``1 <= k < N``.
    Distances are exact float64 on re-ranked rows and float32-accurate elsewhere (see the module's Exactness)."""
    found = Neighbours(features, k, metric=metric)
    return found.indices, found.distances


def class_totals(
    neighbour_labels: np.ndarray, distances: np.ndarray, n_classes: int, *, weights: str
) -> np.ndarray:
    """Vote totals (N, C) of the neighbours' label codes (N, k): one vote each (``uniform``) or 1/dist
    (``distance``; when some neighbours are at distance 0 only they vote, one each)."""
    if weights not in _WEIGHTS:
        raise ValueError(f"unknown knn weights {weights!r}; use one of {', '.join(_WEIGHTS)}")
    n, k = neighbour_labels.shape
    if weights == "uniform":
        w = np.ones((n, k))
    else:
        zero = distances == 0.0
        has_zero = zero.any(axis=1, keepdims=True)
        with np.errstate(divide="ignore"):
            w = np.where(has_zero, zero.astype(np.float64), 1.0 / distances)
    flat = np.repeat(np.arange(n), k) * n_classes + neighbour_labels.ravel()
    return np.bincount(flat, weights=w.ravel(), minlength=n * n_classes).reshape(n, n_classes)


def vote(neighbour_labels: np.ndarray, distances: np.ndarray, n_classes: int, *, weights: str) -> np.ndarray:
    """Predicted class (N,) from the neighbours' label codes and distances (N, k), sorted nearest first.

    Ties between classes go to the tied class whose first neighbour comes earliest in the list.
    """
    totals = class_totals(neighbour_labels, distances, n_classes, weights=weights)
    tied = totals == totals.max(axis=1, keepdims=True)
    first = np.argmax(np.take_along_axis(tied, neighbour_labels, axis=1), axis=1)
    return neighbour_labels[np.arange(len(neighbour_labels)), first]


def _close_votes(found: Neighbours, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows not yet exact whose two best distance-weighted totals are within the float32 error of the weights:
    each 1/dist has relative error at most τ/(2·s₁) (s₁ the nearest squared distance, > τ on these rows)."""
    totals = class_totals(y[found.indices], found.distances, n_classes, weights="distance")
    top2 = -np.partition(-totals, 1, axis=1)[:, :2] if n_classes > 1 else np.c_[totals, np.zeros(len(totals))]
    bound = (top2[:, 0] + top2[:, 1]) * found.tau / (2.0 * np.maximum(found.nearest_sq, np.finfo(float).tiny))
    return np.flatnonzero(~found.exact & (top2[:, 0] - top2[:, 1] <= bound))


def _tied_votes(found: Neighbours, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Rows not yet exact whose uniform vote ties between classes and whose float32 order is in doubt: the tie
    goes to the class met first, so only there can the order change the prediction (the set is already exact)."""
    candidates = np.flatnonzero(found.order_unclear & ~found.exact)
    if not len(candidates):
        return candidates
    totals = class_totals(
        y[found.indices[candidates]], found.distances[candidates], n_classes, weights="uniform"
    )
    tied = (totals == totals.max(axis=1, keepdims=True)).sum(axis=1) > 1
    return candidates[tied]


@register_metric(
    "knn",
    direction="higher = more transferable; in [0, 1].",
    needs="features N×D, class labels (N,) of any hashable kind (≥ 2 classes); k (1 ≤ k < N).",
    summary="leave-one-out k-nearest-neighbour accuracy (faiss, exact)",
)
def knn(
    features: np.ndarray, labels: np.ndarray, *, k: int = 20, metric: str = "cosine", weights: str = "uniform"
) -> float:
    """Leave-one-out kNN accuracy in [0, 1] (higher = more transferable) of class ``labels`` (N,) in the space of
    ``features`` (N×D). ``metric``: "cosine" or "l2"; ``weights``: "uniform" or "distance"; 1 ≤ ``k`` < N."""
    feats = check_features(features)
    encoded = encode_labels(labels, feats.shape[0])
    if metric not in _METRICS:
        raise ValueError(f"unknown knn metric {metric!r}; use one of {', '.join(_METRICS)}")
    if weights not in _WEIGHTS:
        raise ValueError(f"unknown knn weights {weights!r}; use one of {', '.join(_WEIGHTS)}")
    n = feats.shape[0]
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1 or k >= n:
        # a k the sample count cannot serve: not applicable to this many samples; a bad k itself: a bug
        raise (NotApplicable if isinstance(k, (int, np.integer)) and 1 <= k else ValueError)(
            f"knn needs 1 <= k < N (a sample's neighbours are the other N-1 samples); got k={k!r} with N={n}. "
            f"Pass a smaller k, e.g. k={max(1, min(20, n - 1))} (with `rank`: `[metric_params.knn]` `k = "
            f"{max(1, min(20, n - 1))}` in its --config file)"
        )
    return loo_accuracy(Neighbours(feats, int(k), metric=metric, exact_order=False), encoded, weights)


def loo_accuracy(found: Neighbours, encoded: EncodedLabels, weights: str) -> float:
    """Leave-one-out accuracy of the vote over ``found`` (built with ``exact_order=False``): re-ranks in float64
    the rows whose vote the float32 order could change, then votes (see the module's Exactness)."""
    if weights == "distance":
        found.make_exact(_close_votes(found, encoded.y, encoded.n_classes))
    else:
        found.make_exact(_tied_votes(found, encoded.y, encoded.n_classes))
    predicted = vote(encoded.y[found.indices], found.distances, encoded.n_classes, weights=weights)
    return float(np.mean(predicted == encoded.y))
