"""SFDA: Self-challenging Fisher Discriminant Analysis.

Card
----
- Paper: Shao et al., "Not All Models Are Equal: Predicting Model Transferability in a Self-challenging
  Fisher Space", ECCV 2022. Reference code: TencentARC/SFDA ``metrics.py::SFDA_Score`` (read, not copied).
- Formula: a regularised Fisher discriminant ``fit(X, y, λ)`` with class means ``M`` (C×D), within-class
  scatter ``S_w = Σ_c π_c cov_pop(X_c)`` and ``S_w' = (1-λ)·S_w + λ·trace(S_w)/D·I`` predicts
  ``softmax(X·coefᵀ + b)`` with ``coef = M·W·Wᵀ`` (W: the generalised eigenvectors of ``(S_b, S_w')``)
  and ``b_c = -½·μ_cᵀ coef_c + log π_c``. λ = ``max(exp(-5ρ), 1e-10)``, ρ the largest eigenvalue of S_w by
  three rounds of power iteration. Score: fit once (λ*), soften the probabilities with a second softmax,
  "ConfMix" every sample towards the mean of the other classes' means by its softened own-class probability,
  refit on the mixed features with λ*, and return ``mean_i P(y_i | x_i mixed)``.
- Direction: higher = more transferable (the probability of the true class in a self-challenged Fisher
  space), in [0, 1]. No sign flip.
- Inputs: ``features`` N×D (float32 or float64), class ``labels`` (N,) of any hashable kind, ≥ 2 classes.
- Failure modes: NaN/inf, shape mismatch, < 2 classes -> ValueError. A class with one sample is allowed
  (it adds zero scatter, as in the reference). Constant columns and N < D are handled by the shrinkage
  (λ ≥ 1e-10 keeps ``S_w'`` positive definite); features with *no* within-class variation at all
  (``trace(S_w) = 0``) make the problem undefined -> ValueError.
- Complexity: two N·D² float64 scatter products (one per fit), two D³/3 Cholesky factorisations, O(N·D·C)
  for the predictions; memory O(D² + N·C) plus one N×D copy of the mixed features in the input dtype
  (the float64 casts are done in row chunks).

Why it is faster than the reference
-----------------------------------
``scipy.linalg.eigh(S_b, S_w')`` returns eigenvectors normalised so that ``Wᵀ S_w' W = I``; with all D of
them kept, ``W`` is square and invertible, hence ``W Wᵀ = S_w'⁻¹`` exactly, whatever ``S_b`` is. So
``coef = M·S_w'⁻¹`` is one Cholesky solve: the total scatter ``S_t``, the between scatter ``S_b`` and the
generalised eigendecomposition never influence the value and are not computed. The reference computes two
scatter matrices per fit (four N·D² products) plus two generalised eigenproblems.

Precision quirk kept from the reference: it writes the mixed features into the caller's array, so for
float32 input the mixed features are rounded to float32 before the second fit. This module rounds a private
copy the same way and never modifies the caller's array.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import scipy.sparse

from metrics._registry import register_metric
from metrics._validation import check_features, encode_labels

#: Rows per float64 chunk when forming scatter matrices and predictions: bounds the float64 temporary to
#: about 8192·D·8 bytes (128 MiB at D = 2048) instead of a full float64 copy of the features.
_CHUNK_ROWS = 8192


def class_means(features: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """Class means in float64, shape (C, D); ``y`` holds codes 0..C-1 (every class non-empty)."""
    sums = np.zeros((n_classes, features.shape[1]), dtype=np.float64)
    counts = np.bincount(y, minlength=n_classes).astype(np.float64)
    for start in range(0, len(y), _CHUNK_ROWS):
        stop = start + _CHUNK_ROWS
        codes = y[start:stop]
        # a sparse one-hot (C×rows) product sums each class in float64 in O(rows·D), much faster than
        # np.add.at, and without a float64 copy of all of X
        onehot = scipy.sparse.csr_matrix(
            (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(n_classes, len(codes))
        )
        sums += onehot @ features[start:stop].astype(np.float64, copy=False)
    return sums / counts[:, None]


def within_scatter(features: np.ndarray, y: np.ndarray, means: np.ndarray) -> np.ndarray:
    """``S_w = Σ_c π_c·cov_pop(X_c) = (1/N)·Σ_i (x_i - μ_{y_i})(x_i - μ_{y_i})ᵀ``, float64 D×D.

    Samples are centred on their class mean *before* the product (no ``E[xxᵀ] - μμᵀ`` cancellation), in
    float64 row chunks; ``A.T @ A`` lets numpy use the symmetric rank-k update (half the flops of a GEMM).
    """
    n, d = features.shape
    scatter = np.zeros((d, d), dtype=np.float64)
    for start in range(0, n, _CHUNK_ROWS):
        stop = start + _CHUNK_ROWS
        centred = features[start:stop].astype(np.float64) - means[y[start:stop]]
        scatter += centred.T @ centred
    scatter /= n
    return scatter


def _largest_eigenvalue(matrix: np.ndarray, rounds: int = 3) -> float:
    """The reference's power-iteration estimate of the largest eigenvalue of a PSD matrix.

    Start ``x = S·1`` (row sums); ``rounds`` times ``u = Sx/‖Sx‖, x = Su/‖Su‖``; return ``xᵀ S u``.
    When the row sums vanish (they can, e.g. for a scatter whose rows cancel) the reference divides 0/0
    and returns NaN; we start from the diagonal instead, which is non-zero whenever ``trace(S) > 0``.
    """
    x = matrix.sum(axis=1)
    if not np.any(x):
        x = np.diag(matrix).copy()
    u = x
    for _ in range(rounds):
        product = matrix @ x
        u = product / np.linalg.norm(product)
        product = matrix @ u
        x = product / np.linalg.norm(product)
    return float(x @ (matrix @ u))


def shrinkage_from_scatter(scatter: np.ndarray) -> float:
    """λ = max(exp(-5ρ), 1e-10), ρ the power-iteration estimate of the largest eigenvalue of ``scatter``."""
    rho = _largest_eigenvalue(scatter)
    return max(float(np.exp(-5.0 * rho)), 1e-10)


def _softmax_rows(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stabilised by the row maximum; returns a new array."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    np.exp(shifted, out=shifted)
    shifted /= shifted.sum(axis=1, keepdims=True)
    return shifted


class _FisherFit:
    """One regularised Fisher discriminant fit (see the module card); prediction in float64 chunks."""

    def __init__(self, features: np.ndarray, y: np.ndarray, counts: np.ndarray, shrinkage: float | None):
        n, d = features.shape
        self.means = class_means(features, y, len(counts))
        scatter = within_scatter(features, y, self.means)
        mean_variance = float(np.trace(scatter)) / d
        if not mean_variance > 0.0:
            raise ValueError(
                "sfda: the features have no within-class variation (every class is a single repeated point), "
                "so the Fisher discriminant is undefined; check that the features were extracted correctly"
            )
        self.shrinkage = shrinkage_from_scatter(scatter) if shrinkage is None else shrinkage
        regularised = scatter * (1.0 - self.shrinkage)
        regularised.flat[:: d + 1] += self.shrinkage * mean_variance
        # coef = M·W·Wᵀ = M·S_w'⁻¹ (module docstring): solve S_w'·coefᵀ = Mᵀ by Cholesky.
        factor = scipy.linalg.cho_factor(regularised, lower=True, overwrite_a=True, check_finite=False)
        self.coef = scipy.linalg.cho_solve(factor, self.means.T, check_finite=False).T  # (C, D)
        priors = counts / n
        self.intercept = -0.5 * np.einsum("cd,cd->c", self.means, self.coef) + np.log(priors)

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities, float64 (N, C)."""
        out = np.empty((features.shape[0], self.coef.shape[0]), dtype=np.float64)
        for start in range(0, features.shape[0], _CHUNK_ROWS):
            stop = start + _CHUNK_ROWS
            logits = features[start:stop].astype(np.float64, copy=False) @ self.coef.T + self.intercept
            out[start:stop] = _softmax_rows(logits)
        return out


def sfda_score(features: np.ndarray, labels: np.ndarray) -> float:
    """SFDA score (mean self-challenged true-class probability), in [0, 1]; see the module card.

    Args:
        features: N×D float array (float32 or float64); not modified.
        labels: (N,) class labels of any hashable kind, at least 2 classes.

    Returns:
        ``mean_i P(y_i | mixed x_i)`` from the second Fisher fit; higher = more transferable.
    """
    x = check_features(features)
    encoded = encode_labels(labels, x.shape[0])
    y, counts, n_classes = encoded.y, encoded.counts, encoded.n_classes

    first = _FisherFit(x, y, counts, shrinkage=None)
    probs = first.predict_proba(x)
    # The reference softens the probabilities with a second softmax before mixing.
    soft = _softmax_rows(probs)
    own = soft[np.arange(len(y)), y][:, None]  # P'_{i, y_i}, (N, 1)

    # ConfMix: move each sample towards the mean of the *other* classes' means, by its own-class confidence.
    others = (first.means.sum(axis=0, keepdims=True) - first.means) / (n_classes - 1)  # (C, D)
    mixed = np.empty_like(x)  # the input dtype: float32 input is rounded like the reference's in-place write
    for start in range(0, len(y), _CHUNK_ROWS):
        stop = start + _CHUNK_ROWS
        p = own[start:stop]
        mixed[start:stop] = (
            p * x[start:stop].astype(np.float64, copy=False) + (1.0 - p) * others[y[start:stop]]
        )

    second = _FisherFit(mixed, y, counts, shrinkage=first.shrinkage)
    final = second.predict_proba(mixed)
    return float(final[np.arange(len(y)), y].mean())


@register_metric(
    "sfda",
    summary="Self-challenging Fisher Discriminant Analysis (Shao et al., ECCV 2022)",
    properties={"sample_order", "label_renaming", "unmodified"},
)
def sfda(features: np.ndarray, labels: np.ndarray) -> float:
    """SFDA: mean true-class probability of a self-challenged regularised Fisher discriminant, in [0, 1].

    Higher = more transferable. Not invariant to feature scale: the shrinkage λ = exp(-5ρ) depends on the
    scale of the within-class scatter, as in the reference. See :mod:`metrics.sfda` for the full card.
    """
    return sfda_score(features, labels)
