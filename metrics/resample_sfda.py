"""SFDA on many subsets of N ≤ D samples, in the span of the samples: the bootstrap's fast path for SFDA.

Every quantity SFDA forms (class means, within-class scatter, coefficients, predictions) is built from the rows
themselves, so with Q (D×r) an orthonormal basis of a subspace holding every row, the D×D scatter is
``Q·(Qᵀ S Q)·Qᵀ``, the regularised scatter acts as the same multiple of the identity off the subspace, and the
whole fit can run on the r-dimensional coordinates ``x·Q`` (``_FisherFit(basis=...)`` keeps the ambient D for
``trace/D`` and the all-ones start of the power iteration). With N ≤ D that replaces two D×D Cholesky
factorisations (D³/3 each: 2.9 GFLOP at D = 2048) by r×r ones, r ≤ N.

The first fit uses one basis of all N rows (a QR of Fᵀ, once; the coordinates are Rᵀ). The ConfMixed rows of the
second fit are formed in D dimensions exactly as the metric forms them, including its rounding to the features'
dtype, and the second fit runs in a basis of those rows (a QR of the subset's mixed rows). Values equal the metric's
to rounding; subsets of more than D samples, or a full set of more than D, are scored directly.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from metrics._registry import register_resampler
from metrics._resample import RESAMPLE_ERRORS
from metrics._validation import check_features, encode_labels
from metrics.sfda import _class_means, _FisherFit, _Rows, _softmax_rows, sfda_score


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


@register_resampler("sfda")
def sfda_resampled(
    features: np.ndarray, labels: np.ndarray, subsets: list[np.ndarray]
) -> list[float | None] | None:
    """SFDA of ``features[idx], labels[idx]`` for every ``idx`` in ``subsets`` (None where it raises); None
    (decline: score each subset in turn) when there are more samples than dimensions."""
    feats = check_features(features)
    n, d = feats.shape
    if n > d:
        return None
    q, r = scipy.linalg.qr(feats.astype(np.float64).T, mode="economic", check_finite=False)  # Fᵀ = Q·R
    coordinates, ones = r.T, q.sum(axis=0)  # F·Q = Rᵀ; Qᵀ·1
    labels = np.asarray(labels)
    out: list[float | None] = []
    for idx in subsets:
        try:
            out.append(_sfda_subset(feats, labels, idx, coordinates, ones))
        except RESAMPLE_ERRORS:
            out.append(None)
    return out
