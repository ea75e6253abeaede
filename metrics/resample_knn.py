"""kNN on many subsets from one neighbour search: the bootstrap's fast path for :func:`metrics.knn.knn`.

One faiss search over all N samples fetches each row's ``wide`` nearest rows (``wide`` sized so that a subset
keeping a fraction f of the samples still finds ``k + 1 + m`` of its own members among them: ``(k + 1 + m) / f``
with a 25 % margin plus 16; m = ``knn._MARGIN``). For a subset, each member row's candidate list is the full list
filtered to members, which is exactly the list a search of the subset alone returns: the subset's nearest members
are the nearest members of the whole. Those lists then go through the same bounds, float64 re-ranking and vote as
:func:`metrics.knn.knn` (``Neighbours(candidates=...)``), so the value is the subset's kNN accuracy exactly. A row
whose filtered list is too short (rare: many of its neighbours left out) gets its candidates from a float64 scan of
the subset and is re-ranked in float64, which is what the metric's re-ranking would give it.

Cost: one search of N rows for ``wide`` neighbours (about one scoring pass), then O(N·wide) filtering plus the few
re-ranked rows per subset, instead of one N_sub² search per subset.
"""

from __future__ import annotations

import numpy as np

from metrics._registry import register_resampler
from metrics._resample import RESAMPLE_ERRORS
from metrics._validation import NotApplicable, check_features, encode_labels
from metrics.knn import _MARGIN, _METRICS, _WEIGHTS, Neighbours, _Space, loo_accuracy, search


def _wide(n: int, k: int, subsets: list[np.ndarray]) -> int:
    """Neighbours to fetch per row so that the smallest subset almost always keeps k + 1 + m of them."""
    smallest = min((len(idx) for idx in subsets), default=n)
    fraction = max(smallest / n, 1e-3)
    return min(n, int(np.ceil((k + 1 + _MARGIN) / fraction * 1.25)) + 16)


def _scan(space: _Space, rows: np.ndarray, fetch: int) -> tuple[np.ndarray, np.ndarray]:
    """Float64 squared distances and indices of the ``fetch`` nearest rows of ``space`` (itself included) for each
    of ``rows``, by a full scan (stable sort, as the re-ranking orders)."""
    every = space.rows(np.arange(space.features.shape[0]))
    sq = np.empty((len(rows), fetch))
    found = np.empty((len(rows), fetch), dtype=np.int64)
    for i, row in enumerate(rows):
        diff = every - every[row]
        dist = np.einsum("nd,nd->n", diff, diff)
        order = np.argsort(dist, kind="stable")[:fetch]
        found[i], sq[i] = order, dist[order]
    return sq, found


def _subset_accuracy(
    feats: np.ndarray,
    labels: np.ndarray,
    idx: np.ndarray,
    full: tuple[np.ndarray, np.ndarray],
    k: int,
    metric: str,
    weights: str,
) -> float:
    sub = check_features(feats[idx])
    encoded = encode_labels(labels[idx], sub.shape[0])
    n_sub = sub.shape[0]
    if k >= n_sub:
        raise NotApplicable(f"knn needs 1 <= k < N; got k={k} with N={n_sub}")
    fetch = min(k + 1 + _MARGIN, n_sub)
    local = np.full(feats.shape[0], -1, dtype=np.int64)
    local[idx] = np.arange(n_sub)
    sq_full, found_full = full
    loc = local[found_full[idx]]  # (n_sub, wide): subset positions of each row's candidates, -1 if left out
    member = loc >= 0
    taken = member & (np.cumsum(member, axis=1) <= fetch)
    enough = taken.sum(axis=1) == fetch
    sq = np.empty((n_sub, fetch))
    found = np.empty((n_sub, fetch), dtype=np.int64)
    # boolean selection is row-major, so each row's first `fetch` members come out in the full list's order
    found[enough] = loc[enough][taken[enough]].reshape(-1, fetch)
    sq[enough] = sq_full[idx][enough][taken[enough]].reshape(-1, fetch)
    short = np.flatnonzero(~enough)
    if len(short):
        sq[short], found[short] = _scan(_Space(sub, metric), short, fetch)
    neighbours = Neighbours(
        sub, k, metric=metric, exact_order=False, candidates=(sq, found), force_exact=~enough
    )
    return loo_accuracy(neighbours, encoded, weights)


@register_resampler("knn")
def knn_resampled(
    features: np.ndarray,
    labels: np.ndarray,
    subsets: list[np.ndarray],
    *,
    k: int = 20,
    metric: str = "cosine",
    weights: str = "uniform",
) -> list[float | None]:
    """:func:`metrics.knn.knn` of ``features[idx], labels[idx]`` for every ``idx`` in ``subsets`` (None where it
    raises), from one search over all N rows."""
    feats = check_features(features)
    if metric not in _METRICS or weights not in _WEIGHTS:
        raise ValueError(f"unknown knn metric {metric!r} or weights {weights!r}")
    if not isinstance(k, (int, np.integer)) or isinstance(k, bool) or k < 1:
        raise ValueError(f"knn needs 1 <= k; got k={k!r}")
    labels = np.asarray(labels)
    n = feats.shape[0]
    wide = _wide(n, int(k), subsets)
    sq_full = np.empty((n, wide), dtype=np.float32)
    found_full = np.empty((n, wide), dtype=np.int64)
    for start, stop, sq32, found in search(_Space(feats, metric), wide):
        sq_full[start:stop], found_full[start:stop] = sq32, found
    out: list[float | None] = []
    for idx in subsets:
        try:
            out.append(_subset_accuracy(feats, labels, idx, (sq_full, found_full), int(k), metric, weights))
        except RESAMPLE_ERRORS:
            out.append(None)
    return out
