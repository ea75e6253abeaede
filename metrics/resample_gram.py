"""LogME and NCTI on many subsets from one Gram matrix: the bootstrap's fast paths for these metrics.

Both start from a float64 D×D Gram of the samples (LogME: ``FᵀF`` and ``FᵀT``; NCTI: the centred scatter for its
PCA), which costs N·D² and dominates at N ≫ D. A subset's Gram is the full one minus the Gram of the rows it leaves
out (a down-date), so a subset keeping 80 % of the samples costs 0.2·N·D² instead of 0.8·N·D²; everything after the
Gram (LogME's eigendecomposition and fixed point, NCTI's top eigenpairs and LDA) runs on the subset as before.
NCTI's scatter is centred on the full set's mean and moved to the subset's mean exactly:
``Σ_S (x − m_S)(x − m_S)ᵀ = Σ_S (x − m)(x − m)ᵀ − n_S (m_S − m)(m_S − m)ᵀ``, with ``m_S − m`` small, so there is
no cancellation beyond the down-date's.

The values equal the per-subset computation to rounding (relative differences of order eps·‖F‖²/λ_min of the
Gram); ``tests/test_metrics_resample.py`` checks them. Where a down-date could decide what the metric keeps or
drops (LogME on rank-deficient features, whose noise eigenvalues are cut), the subset is computed directly, as it
is when the subset is at most half the samples (a direct Gram is then cheaper) or repeats a sample.
"""

from __future__ import annotations

import numpy as np

from metrics._registry import register_resampler
from metrics._resample import RESAMPLE_ERRORS
from metrics._validation import check_features, encode_labels, is_regression
from metrics.logme import evidences_from_gram, gram64, logme_evidences, one_hot_rows
from metrics.ncti import ncti_terms


def _left_out(n: int, idx: np.ndarray) -> np.ndarray | None:
    """The rows a subset leaves out, or None when a direct computation is the better (or only exact) choice."""
    if len(np.unique(idx)) != len(idx):  # a repeated sample: the Gram is no longer full minus the rest
        return None
    out = np.ones(n, dtype=bool)
    out[idx] = False
    rest = np.flatnonzero(out)
    return rest if len(rest) < len(idx) else None


def _logme_subset(
    feats: np.ndarray,
    labels: np.ndarray,
    idx: np.ndarray,
    full: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
) -> float:
    gram, ft, classes, y = full
    n, d = feats.shape
    sub = encode_labels(labels[idx], len(idx))
    rest = _left_out(n, idx) if len(idx) > d else None
    if rest is not None:
        gram_out, ft_out = gram64(feats[rest], right=one_hot_rows(y[rest], len(classes)))
        columns = np.searchsorted(classes, sub.classes)  # the subset's classes among the full set's
        evidence, kept = evidences_from_gram(
            gram - gram_out, (ft - ft_out)[:, columns], sub.counts.astype(np.float64), len(idx)
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
    gram, ft = gram64(feats, right=one_hot_rows(encoded.y, encoded.n_classes))
    full = (gram, ft, encoded.classes, encoded.y)
    out: list[float | None] = []
    for idx in subsets:
        try:
            out.append(_logme_subset(feats, labels, idx, full))
        except RESAMPLE_ERRORS:
            out.append(None)
    return out


def _ncti_subset(
    feats: np.ndarray, labels: np.ndarray, idx: np.ndarray, gram: np.ndarray, mean: np.ndarray
) -> dict[str, float]:
    sub = feats[idx]
    rest = _left_out(feats.shape[0], idx)
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
    """NCTI's raw terms of ``features[idx], labels[idx]`` for every ``idx`` in ``subsets`` (None where they raise)."""
    feats = check_features(features)
    labels = np.asarray(labels)
    mean = feats.mean(axis=0, dtype=np.float64)
    gram = gram64(feats, center=mean)
    out: list[dict[str, float] | None] = []
    for idx in subsets:
        try:
            out.append(_ncti_subset(feats, labels, idx, gram, mean))
        except RESAMPLE_ERRORS:
            out.append(None)
    return out
