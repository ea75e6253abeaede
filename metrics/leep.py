"""LEEP: Log Expected Empirical Prediction.

Card
----
- Paper: Nguyen et al., "LEEP: A New Measure to Evaluate Transferability of Learned Representations", ICML 2020.
  Reference: thuml/LogME ``LEEP.py`` (read, not copied); ``../shared/reference/METRICS.md`` § leep.
- Formula: with θ the source classifier's probabilities (N×Cs), the empirical joint
  ``J[c, z] = Σ_{i: y_i = c} θ_iz / N``, the conditional ``P(c | z) = J[c, z] / Σ_c' J[c', z]`` and
  ``LEEP = mean_i log Σ_z θ_iz · P(y_i | z)``: the log-likelihood of the "expected empirical predictor".
- Direction: higher = more transferable (no sign flip); ≤ 0.
- Inputs: ``features`` N×D (only their shape is checked: LEEP never reads them, so NaN there changes nothing; a
  broken forward pass shows as NaN in θ, which is refused), class ``labels`` (N,) of any hashable kind,
  ``source_probs`` θ (N×Cs, rows summing to 1; required).
- Failure modes: missing ``source_probs`` -> ValueError from ``metrics.compute``; wrong shape, negative values,
  rows not summing to 1, NaN/inf in θ, < 2 classes -> ValueError. A source class whose column of θ is all zero gives 0/0
  in the reference; here its P(· | z) is set to 0, which changes nothing because every θ_iz it multiplies is 0.
  A class with one sample is fine.
- Complexity: O(N·Cs) time (one sparse class-indicator product and one row-wise dot per sample, in row chunks);
  memory O(C·Cs) plus a float64 copy of θ.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse

from metrics._registry import register_metric
from metrics._validation import check_features, check_source_probs, encode_labels

_CHUNK_ROWS = 8192


def class_indicator(y: np.ndarray, n_classes: int) -> scipy.sparse.csr_matrix:
    """Sparse C×N indicator ``M[c, i] = 1[y_i = c]``: ``M @ A`` sums the rows of A per class in O(nnz(A))."""
    n = len(y)
    return scipy.sparse.csr_matrix((np.ones(n), (y, np.arange(n))), shape=(n_classes, n))


def empirical_conditional(theta: np.ndarray, y: np.ndarray, n_classes: int) -> np.ndarray:
    """``P(c | z)`` (C×Cs) from source probabilities θ (N×Cs) and label codes y; all-zero source columns -> 0."""
    joint = np.asarray(class_indicator(y, n_classes) @ theta) / theta.shape[0]
    marginal = joint.sum(axis=0, keepdims=True)
    return np.divide(joint, marginal, out=np.zeros_like(joint), where=marginal > 0)


def expected_prediction(theta: np.ndarray, y: np.ndarray, conditional: np.ndarray) -> np.ndarray:
    """``p_i = Σ_z θ_iz · P(y_i | z)`` (N,), computed in row chunks (no N×C or N×Cs temporary beyond a chunk)."""
    out = np.empty(theta.shape[0])
    for start in range(0, theta.shape[0], _CHUNK_ROWS):
        stop = start + _CHUNK_ROWS
        out[start:stop] = np.einsum("iz,iz->i", theta[start:stop], conditional[y[start:stop]])
    return out


@register_metric(
    "leep",
    direction="higher = more transferable (no sign flip); ≤ 0.",
    needs="source_probs (a backbone with a source classifier head); features N×D (only their shape is checked: LEEP never reads them, so NaN there changes nothing; a broken forward pass shows as NaN in θ, which is refused), class labels (N,) of any hashable kind, source_probs θ (N×Cs, rows summing to 1; required).",
    requires=("source_probs",),
    summary="LEEP: log expected empirical prediction",
    reads_features=False,
)
def leep(features: np.ndarray, labels: np.ndarray, *, source_probs: np.ndarray) -> float:
    """LEEP score (≤ 0, higher = more transferable) of class ``labels`` (N,) given the source classifier's
    probabilities ``source_probs`` (N×Cs). Only the shape of ``features`` (N×D) is checked."""
    n = check_features(features, finite=False).shape[0]
    encoded = encode_labels(labels, n)
    theta = check_source_probs(source_probs, n)
    conditional = empirical_conditional(theta, encoded.y, encoded.n_classes)
    return float(np.mean(np.log(expected_prediction(theta, encoded.y, conditional))))
