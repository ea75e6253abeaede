"""LogME and NCTI on many subsets from one Gram matrix: the bootstrap's fast paths for these metrics.

Both start from a float64 D×D Gram of the samples (LogME: ``FᵀF`` and ``FᵀT``; NCTI: the centred scatter for its
PCA), which costs N·D² and dominates at N ≫ D. A subset's Gram is the full one minus the Gram of the rows it leaves
out (a down-date), so a subset keeping 80 % of the samples costs 0.2·N·D² instead of 0.8·N·D²; everything after the
Gram (LogME's eigendecomposition and fixed point, NCTI's top eigenpairs and LDA) runs on the subset as before.
NCTI's scatter is centred on the full set's mean and moved to the subset's mean exactly:
``Σ_S (x − m_S)(x − m_S)ᵀ = Σ_S (x − m)(x − m)ᵀ − n_S (m_S − m)(m_S − m)ᵀ``, with ``m_S − m`` small, so there is
no cancellation beyond the down-date's.

The values equal the per-subset computation to rounding (relative differences of order eps·‖F‖²/λ_min of the
Gram); ``tests/metrics/test_resample.py`` checks them. Where a down-date could decide what the metric keeps or
drops (LogME on rank-deficient features, whose noise eigenvalues are cut), the subset is computed directly, as it
is when the subset is at most half the samples (a direct Gram is then cheaper) or repeats a sample.
"""

from __future__ import annotations

import numpy as np

from metrics._lapack import top_eigenpairs, tridiagonal_spectrum
from metrics._registry import register_resampler
from metrics._resample import RESAMPLE_ERRORS
from metrics._validation import NotApplicable, check_features, encode_labels, is_regression
from metrics.logme import (
    _fixed_point_evidence,
    evidences_from_spectrum,
    gram64,
    logme_evidences,
    one_hot_rows,
)
from metrics.ncti import N_COMPONENTS, ncti_terms


def _left_out(n: int, idx: np.ndarray) -> np.ndarray | None:
    """The rows a subset leaves out, or None when a direct computation is the better (or only exact) choice."""
    if len(np.unique(idx)) != len(idx):  # a repeated sample: the Gram is no longer full minus the rest
        return None
    out = np.ones(n, dtype=bool)
    out[idx] = False
    rest = np.flatnonzero(out)
    return rest if len(rest) < len(idx) else None


def _logme_dual(
    products: np.ndarray, idx: np.ndarray, codes: np.ndarray, counts: np.ndarray, d: int
) -> float:
    """LogME of a subset of n ≤ D samples from the n×n Gram ``F Fᵀ`` of its rows: its eigenpairs are the thin SVD
    the metric takes (``F = U S Vᵀ``: ``F Fᵀ = U S² Uᵀ``), without the O(n²·D) SVD."""
    n = len(idx)
    values, u = np.linalg.eigh(products[np.ix_(idx, idx)])
    sigma = np.abs(values)
    if not sigma.max() > 0:
        raise NotApplicable("logme: the features are all zero (rank 0)")
    targets = np.zeros((n, len(counts)))
    targets[np.arange(n), codes] = 1.0
    x2 = (u.T @ targets) ** 2
    return float(np.mean(_fixed_point_evidence(sigma, x2, counts - x2.sum(axis=0), n, d)))


def _logme_subset(
    feats: np.ndarray,
    labels: np.ndarray,
    idx: np.ndarray,
    full: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    products: np.ndarray | None,
) -> float:
    gram, ft, classes, y = full
    n, d = feats.shape
    sub = encode_labels(labels[idx], len(idx))
    if products is not None and len(idx) <= d:
        return _logme_dual(products, idx, sub.y, sub.counts.astype(np.float64), d)
    rest = _left_out(n, idx) if len(idx) > d else None
    if rest is not None:
        gram_out, ft_out = gram64(feats[rest], right=one_hot_rows(y[rest], len(classes), sparse=True))
        # the subset's classes among the full set's: both encodings order classes alike (sorted, or by text for
        # mixed types, which cannot be compared, so no searchsorted)
        columns = np.unique(y[idx])
        # the spectrum without the D³ eigenvector back-transformation (and without holding the GIL)
        eigvals, projections = tridiagonal_spectrum(gram - gram_out, (ft - ft_out)[:, columns])
        evidence, kept = evidences_from_spectrum(
            eigvals, lambda keep: projections[keep], sub.counts.astype(np.float64), len(idx)
        )
        if (
            kept == d
        ):  # full rank: no eigenvalue sits near the cut, so the down-date cannot change what is kept
            return float(np.mean(evidence))
    return float(np.mean(logme_evidences(feats[idx], labels[idx])))


@register_resampler("logme")
def logme_resampled(
    features: np.ndarray, labels: np.ndarray, subsets: list[np.ndarray]
) -> list[float | None] | None:
    """LogME of ``features[idx], labels[idx]`` for every ``idx`` in ``subsets`` (None where it raises); None
    (decline: score each subset in turn) for regression targets."""
    if is_regression(labels):
        return None
    feats = check_features(features)
    labels = np.asarray(labels)
    encoded = encode_labels(labels, feats.shape[0])
    n, d = feats.shape
    if any(len(idx) > d for idx in subsets):
        gram, ft = gram64(feats, right=one_hot_rows(encoded.y, encoded.n_classes, sparse=True))
    else:
        gram, ft = np.zeros((d, d)), np.zeros((d, encoded.n_classes))  # read only for subsets of more than D
    products = None
    if any(len(idx) <= d for idx in subsets):
        rows = feats.astype(np.float64)
        products = rows @ rows.T
    full = (gram, ft, encoded.classes, encoded.y)
    out: list[float | None] = []
    for idx in subsets:
        try:
            out.append(_logme_subset(feats, labels, idx, full, products))
        except RESAMPLE_ERRORS:
            out.append(None)
    return out


def _dual_components(centred_products: np.ndarray, idx: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
    """NCTI's 64 principal components of a subset of n ≤ D samples from the n×n Gram of its rows (the dual of the
    D×D covariance: ``X_c = U S Vᵀ`` gives scores ``X_c V = U S`` and variances ``S²/(n − 1)``); None when the
    subset's centred rank may be below 64 (the primal path then decides the near-zero components)."""
    n = len(idx)
    if n <= N_COMPONENTS + 1:
        return None
    gram = centred_products[
        np.ix_(idx, idx)
    ]  # rows already centred on the full set's mean: little cancellation
    row_means = gram.mean(axis=1)
    gram = (
        gram - row_means[:, None] - row_means[None, :] + row_means.mean()
    )  # H·K·H: centre on the subset's mean
    values, vectors = top_eigenpairs(gram, N_COMPONENTS)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    if not values[-1] > n * np.finfo(np.float64).eps * values[0]:
        return None
    return vectors * np.sqrt(values), values / (n - 1)


def _ncti_subset(
    feats: np.ndarray,
    labels: np.ndarray,
    idx: np.ndarray,
    gram: np.ndarray,
    mean: np.ndarray,
    centred_products: np.ndarray | None,
) -> dict[str, float]:
    sub = feats[idx]
    if centred_products is not None and len(idx) <= feats.shape[1]:
        components = _dual_components(centred_products, idx)
        if components is not None:
            return ncti_terms(sub, labels[idx], components=components)
    rest = _left_out(feats.shape[0], idx) if len(idx) > feats.shape[1] else None  # `gram` is set only then
    if rest is None:
        return ncti_terms(sub, labels[idx])
    shift = sub.mean(axis=0, dtype=np.float64) - mean  # the same mean ncti computes for the subset, minus m
    centred = gram - gram64(feats[rest], center=mean)
    centred -= len(idx) * np.outer(shift, shift)
    return ncti_terms(sub, labels[idx], centred_gram=centred)


@register_resampler("ncti")
def ncti_resampled(
    features: np.ndarray, labels: np.ndarray, subsets: list[np.ndarray]
) -> list[dict[str, float] | None]:
    """NCTI's raw terms of ``features[idx], labels[idx]`` for every ``idx`` in ``subsets`` (None where they raise).

    Subsets of more than D samples down-date the full D×D scatter; subsets of at most D samples take their PCA
    from the full N×N Gram of the centred rows instead (O(n²) per subset plus a small eigenproblem)."""
    feats = check_features(features)
    labels = np.asarray(labels)
    n, d = feats.shape
    mean = feats.mean(axis=0, dtype=np.float64)
    gram = gram64(feats, center=mean) if any(len(idx) > d for idx in subsets) else np.zeros((d, d))
    centred_products = None
    if any(len(idx) <= d for idx in subsets):
        centred = feats.astype(np.float64) - mean
        centred_products = centred @ centred.T
    out: list[dict[str, float] | None] = []
    for idx in subsets:
        try:
            out.append(_ncti_subset(feats, labels, idx, gram, mean, centred_products))
        except RESAMPLE_ERRORS:
            out.append(None)
    return out
