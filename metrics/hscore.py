"""H-score, and its Ledoit–Wolf shrinkage form.

Card
----
- Papers: Bao et al., "An Information-Theoretic Approach to Transferability in Task Transfer Learning", ICIP 2019;
  shrinkage form: Ibrahim et al., "Newer is not always better: rethinking transferability metrics, their
  peculiarities, stability and performance" (2021/2022). Reference: thuml/Transfer-Learning-Library
  ``tllib/ranking/hscore.py`` (``h_score``, ``regularized_h_score``), read not copied;
  ``../shared/reference/METRICS.md`` § hscore.
- Formula: ``H = trace(pinv(Σ_f) · Σ_g)`` with ``Σ_f = cov_unb(F)`` and ``Σ_g = cov_unb(G)``, G the N×D matrix whose
  row i is the mean of sample i's class (so ``Σ_g = Σ_c n_c (μ_c − μ)(μ_c − μ)ᵀ / (N − 1)``); pinv cuts singular
  values below 1e-15 × the largest. ``shrinkage=True``: ``Σ_f`` replaced by scikit-learn's ``LedoitWolf``
  covariance ``Σ_α = (1 − α)·S + α·trace(S)/D·I`` (S = cov_pop of the centred F) and
  ``H = trace(pinv(Σ_α) · (1 − α) Σ_g)``.
- Direction: higher = more transferable (no sign flip); ≥ 0. The plain score is at most C − 1.
- Inputs: ``features`` N×D float32/float64, class ``labels`` (N,) of any hashable kind, ≥ 2 classes.
- Failure modes: NaN/inf, shape mismatch, < 2 classes -> ValueError. A class with one sample is fine. Constant
  feature columns add zero eigenvalues that the pseudo-inverse drops. N < D makes Σ_f singular; the pseudo-inverse
  handles it and the plain score then tends to C − 1: that is the reference's value, not a bug (use
  ``shrinkage=True`` for a score that stays informative when N < D). Features with zero variance everywhere give 0.
- Complexity: one float64 D×D Gram of the centred features (N·D², row chunks, no float64 copy of F), one D×D
  symmetric eigendecomposition (D³; the reference runs an SVD-based ``pinv`` instead), O(N·D·C) for the class means.
  The Ledoit–Wolf shrinkage needs nothing more: its two sums are ``‖XᵀX‖_F²`` (from the same Gram) and
  ``Σ_i ‖x_i‖⁴`` (O(N·D)), so the shrinkage form costs the same as the plain one (scikit-learn forms a second
  D×D product). Memory O(D² + C·D).

Why eigh instead of pinv: both matrices are symmetric positive semi-definite, so ``pinv(Σ) = V diag(1/λ) Vᵀ`` over
the eigenvalues kept by the same relative cut (singular values of a symmetric matrix are |λ|), and
``trace(pinv(Σ) Bᵀ B) = Σ_i ‖B v_i‖² / λ_i`` for ``Σ_g = Bᵀ B`` with B the C×D weighted, centred class means.
"""

from __future__ import annotations

import numpy as np

from metrics._registry import register_metric
from metrics._validation import EncodedLabels, check_features, encode_labels
from metrics.logme import gram64, one_hot_rows

#: relative singular-value cut of the reference's ``pinv(..., rcond=1e-15)``
_RCOND = 1e-15


def centred_statistics(
    features: np.ndarray, encoded: EncodedLabels
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Float64 ``(mean (D,), centred Gram XᵀX (D×D), B (C×D))`` with X = F − mean and
    ``B[c] = sqrt(n_c) (μ_c − μ)`` so that ``Bᵀ B = Σ_c n_c (μ_c − μ)(μ_c − μ)ᵀ``."""
    mean = features.mean(axis=0, dtype=np.float64)
    gram, centred_sums = gram64(features, center=mean, right=one_hot_rows(encoded.y, encoded.n_classes))
    # class sums of the centred features are n_c·(μ_c − μ)
    between = centred_sums.T / np.sqrt(encoded.counts)[:, None]
    return mean, gram, between


def pinv_trace(eigvals: np.ndarray, eigvecs: np.ndarray, between: np.ndarray) -> float:
    """``trace(pinv(Σ) · Bᵀ B)`` for symmetric ``Σ = V diag(λ) Vᵀ``, dropping |λ| ≤ 1e-15 · max|λ| as ``pinv``."""
    magnitude = np.abs(eigvals)
    if magnitude.max() == 0.0:
        return 0.0  # no variance at all: pinv of the zero matrix is zero
    keep = magnitude > _RCOND * magnitude.max()
    projected = between @ eigvecs[:, keep]
    return float(((projected**2).sum(axis=0) / eigvals[keep]).sum())


def ledoit_wolf(gram: np.ndarray, row_sq_norms: np.ndarray, n: int) -> tuple[np.ndarray, float]:
    """Ledoit–Wolf shrinkage exactly as scikit-learn's ``LedoitWolf(assume_centered=False)`` on centred data X,
    from its Gram ``XᵀX`` (D×D) and ``‖x_i‖²`` (N,): returns ``(shrunk covariance (D×D), shrinkage α)``."""
    d = gram.shape[0]
    emp_cov = gram / n
    trace_terms = np.diag(emp_cov)
    mu = trace_terms.sum() / d
    beta_sum = float((row_sq_norms**2).sum())  # = Σ_jk (X²ᵀ X²)_jk, scikit-learn's beta_
    delta_sum = float((gram**2).sum()) / n**2  # scikit-learn's delta_
    beta = (beta_sum / n - delta_sum) / (d * n)
    delta = (delta_sum - 2.0 * mu * trace_terms.sum() + d * mu**2) / d
    beta = min(beta, delta)
    shrinkage = 0.0 if beta == 0 else beta / delta
    shrunk = (1.0 - shrinkage) * emp_cov
    shrunk.flat[:: d + 1] += shrinkage * mu
    return shrunk, shrinkage


def _row_sq_norms(features: np.ndarray, mean: np.ndarray) -> np.ndarray:
    out = np.empty(features.shape[0])
    step = 4096
    for start in range(0, features.shape[0], step):
        chunk = features[start : start + step].astype(np.float64) - mean
        out[start : start + step] = np.einsum("nd,nd->n", chunk, chunk)
    return out


@register_metric(
    "hscore",
    direction="higher = more transferable (no sign flip); ≥ 0. The plain score is at most C − 1.",
    needs="features N×D float32/float64, class labels (N,) of any hashable kind, ≥ 2 classes.",
    summary="H-score: trace(pinv(cov(F)) cov(class means)); shrinkage=True for Ledoit-Wolf",
)
def hscore(features: np.ndarray, labels: np.ndarray, *, shrinkage: bool = False) -> float:
    """H-score (higher = more transferable) of ``features`` (N×D) for class ``labels`` (N,); ``shrinkage=True``
    uses the Ledoit–Wolf covariance (Ibrahim et al.), better conditioned when N is small relative to D."""
    if not isinstance(shrinkage, (bool, np.bool_)):
        raise ValueError(f"hscore's shrinkage must be True or False, got {shrinkage!r}")
    feats = check_features(features)
    n = feats.shape[0]
    encoded = encode_labels(labels, n)
    mean, gram, between = centred_statistics(feats, encoded)
    between /= np.sqrt(n - 1.0)  # Σ_g = cov_unb(G) = Bᵀ B / (N − 1)
    if not shrinkage:
        eigvals, eigvecs = np.linalg.eigh(gram / (n - 1.0))
        return pinv_trace(eigvals, eigvecs, between)
    shrunk, alpha = ledoit_wolf(gram, _row_sq_norms(feats, mean), n)
    eigvals, eigvecs = np.linalg.eigh(shrunk)
    return (1.0 - alpha) * pinv_trace(eigvals, eigvecs, between)
