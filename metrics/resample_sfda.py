"""SFDA on many subsets of one candidate's samples: the bootstrap's fast paths for SFDA.

Full sets of more than D samples. The first fit's class means and within-class scatter come from the full set's
(class sums and ``Σ_i (x_i − μ_{y_i})(x_i − μ_{y_i})ᵀ`` centred on the full set's class means, formed once) minus
the rows a subset leaves out, then moved exactly to the subset's class means: ``Σ_S (x − μ^S)(x − μ^S)ᵀ =
Σ_S (x − μ^F)(x − μ^F)ᵀ − Σ_c n_c δ_c δ_cᵀ`` with ``δ_c = μ^S_c − μ^F_c`` small, so a subset keeping 80 % costs a
0.2·N·D² product instead of 0.8·N·D² (a subset that repeats a sample or keeps at most half is computed directly).
The ConfMixed rows depend on the first fit's probabilities, so the second fit's scatter is a full n·D² product;
the mixed rows are formed once per subset and stored in the features' dtype (the metric rounds them to it, so
that is exact; memory as for ``features[idx]``), then read in float64 chunks for the second fit's class means,
scatter and predictions, where the metric regenerates them three times.

Full sets of at most D samples: every quantity SFDA forms (class means, within-class scatter, coefficients,
predictions) is built from the rows themselves, so with Q (D×r) an orthonormal basis of a subspace holding every
row, the D×D scatter is ``Q·(Qᵀ S Q)·Qᵀ``, the regularised scatter acts as the same multiple of the identity off
the subspace, and the whole fit can run on the r-dimensional coordinates ``x·Q`` (``_FisherFit(basis=...)`` keeps
the ambient D for ``trace/D`` and the all-ones start of the power iteration). That replaces two D×D Cholesky
factorisations (D³/3 each: 2.9 GFLOP at D = 2048) by r×r ones, r ≤ N. The first fit uses one basis of all N rows
(a QR of Fᵀ, once; the coordinates are Rᵀ); the second fit runs in a basis of the subset's mixed rows.

Values equal the metric's to rounding (``tests/metrics/test_resample.py``).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from metrics._registry import register_resampler
from metrics._resample import RESAMPLE_ERRORS
from metrics._validation import check_features, encode_labels
from metrics.resample_gram import _left_out
from metrics.sfda import (
    _class_means,
    _FisherFit,
    _Rows,
    _softmax_rows,
    _within_scatter,
    centred_gram,
    class_sums,
    sfda_score,
)


def _sfda_subset(
    feats: np.ndarray, labels: np.ndarray, idx: np.ndarray, coordinates: np.ndarray, ones: np.ndarray
) -> float:
    sub = check_features(feats[idx])
    encoded = encode_labels(labels[idx], sub.shape[0])
    n, d = sub.shape
    if n > d:
        return sfda_score(sub, labels[idx])
    y, counts, n_classes = encoded.y, encoded.counts, encoded.n_classes
    projected = _Rows(coordinates[idx], y)
    first = _FisherFit(projected, counts, shrinkage=None, basis=(d, ones))
    soft = _softmax_rows(first.predict_proba(projected))
    own = soft[np.arange(n), y][:, None]
    rows = _Rows(sub, y)
    means = _class_means(rows, n_classes)  # the metric's own D-dimensional means, for its ConfMix
    others = (means.sum(axis=0, keepdims=True) - means) / (n_classes - 1)
    mixed = np.vstack([chunk for _, _, chunk in rows.mixed(own, others).chunks()])
    mixed_coordinates = scipy.linalg.qr(mixed.T, mode="r", check_finite=False)[0][:n].T  # mixed = Rᵀ·Qᵀ
    second = _FisherFit(_Rows(mixed_coordinates, y), counts, shrinkage=first.shrinkage, basis=(d, None))
    final = second.predict_proba(_Rows(mixed_coordinates, y))
    return float(final[np.arange(n), y].mean())


#: rows per block of the ConfMix's element-wise steps: 256·D·8 bytes (1.5 MiB at D = 768) stay in cache, 1.5x
#: faster than the metric's 2048-row chunks (measured)
_MIX_ROWS = 256


class _FullSet:
    """What every subset of more than D samples shares: the full set's class sums (C×D), class means and the
    D×D Gram of the rows centred on their full-set class mean (``Σ_i (x_i − μ_{y_i})(x_i − μ_{y_i})ᵀ``)."""

    def __init__(self, feats: np.ndarray, labels: np.ndarray) -> None:
        encoded = encode_labels(labels, feats.shape[0])
        self.classes, self.y = encoded.classes, encoded.y
        rows = _Rows(feats, self.y)
        self.sums = class_sums(rows, encoded.n_classes)
        self.means = self.sums / encoded.counts[:, None]
        self.gram = centred_gram(rows, self.means)


def _first_statistics(
    feats: np.ndarray,
    idx: np.ndarray,
    full: _FullSet | None,
    rows: _Rows,
    counts: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The first fit's class means (C×D) and within-class scatter ``S_w`` (D×D) of the subset ``rows``: the full
    set's statistics down-dated by the rows the subset leaves out, or (no ``full``, a repeated sample, at most half
    the samples kept) the metric's own computation."""
    rest = None if full is None else _left_out(feats.shape[0], idx)
    if full is None or rest is None:
        means = _class_means(rows, len(counts))
        return means, _within_scatter(rows, means)
    out = _Rows(feats[rest], full.y[rest])
    columns = np.unique(full.y[idx])  # the subset's classes among the full set's, in the subset's order
    means = (full.sums - class_sums(out, len(full.classes)))[columns] / counts[:, None]
    # Σ_S (x − μ^F)(x − μ^F)ᵀ = Σ_S (x − μ^S)(x − μ^S)ᵀ + Σ_c n_c δ_c δ_cᵀ with δ_c = μ^S_c − μ^F_c (small)
    shift = means - full.means[columns]
    scatter = full.gram - centred_gram(out, full.means)
    scatter -= (shift.T * counts) @ shift
    scatter /= rows.n
    return means, scatter


def _sfda_down_dated(feats: np.ndarray, labels: np.ndarray, idx: np.ndarray, full: _FullSet | None) -> float:
    """SFDA of ``feats[idx], labels[idx]`` (any n): the first fit from :func:`_first_statistics`; the ConfMixed
    rows formed once, stored in the features' dtype (the metric rounds them to it, so that is exact), for the second
    fit's means, scatter and predictions, where the metric regenerates them three times."""
    encoded = encode_labels(labels[idx], len(idx))
    y, counts = encoded.y, encoded.counts.astype(np.float64)
    sub = feats[idx]
    rows = _Rows(sub, y)
    means, scatter = _first_statistics(feats, idx, full, rows, counts)
    first = _FisherFit.from_statistics(means, scatter, counts, shrinkage=None)
    soft = _softmax_rows(first.predict_proba(rows))  # the reference softens the probabilities once more
    own = soft[np.arange(rows.n), y][:, None]
    others = (means.sum(axis=0, keepdims=True) - means) / (len(counts) - 1)
    mixed = np.empty_like(sub)
    for start in range(0, rows.n, _MIX_ROWS):  # the operations of metrics.sfda._Rows.chunk, in smaller blocks
        block, p = sub[start : start + _MIX_ROWS].astype(np.float64), own[start : start + _MIX_ROWS]
        block *= p
        block += (1.0 - p) * others[y[start : start + _MIX_ROWS]]
        mixed[start : start + _MIX_ROWS] = block  # the metric's rounding to the features' dtype
    mixed_rows = _Rows(mixed, y)
    second = _FisherFit(mixed_rows, counts, shrinkage=first.shrinkage)
    final = second.predict_proba(mixed_rows)
    return float(final[np.arange(rows.n), y].mean())


@register_resampler("sfda")
def sfda_resampled(features: np.ndarray, labels: np.ndarray, subsets: list[np.ndarray]) -> list[float | None]:
    """SFDA of ``features[idx], labels[idx]`` for every ``idx`` in ``subsets`` (None where it raises).

    A full set of at most D samples: every subset in the span of the samples. Otherwise (:func:`_sfda_down_dated`)
    a subset keeping more than half of the samples, none twice, down-dates the full set's first-fit statistics, the
    others compute them as the metric does; all form their mixed rows once."""
    feats = check_features(features)
    labels = np.asarray(labels)
    n, d = feats.shape
    span: tuple[np.ndarray, np.ndarray] | None = None
    full: _FullSet | None = None
    if n <= d:
        q, r = scipy.linalg.qr(feats.astype(np.float64).T, mode="economic", check_finite=False)  # Fᵀ = Q·R
        span = (r.T, q.sum(axis=0))  # F·Q = Rᵀ; Qᵀ·1
    elif any(len(idx) > d and 2 * len(idx) > n for idx in subsets):
        full = _FullSet(feats, labels)
    out: list[float | None] = []
    for idx in subsets:
        try:
            if span is not None:
                out.append(_sfda_subset(feats, labels, idx, *span))
            else:
                out.append(_sfda_down_dated(feats, labels, idx, full))
        except RESAMPLE_ERRORS:
            out.append(None)
    return out
