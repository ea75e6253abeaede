"""TransRate: mutual information between features and labels measured by the coding rate.

Card
----
- Paper: Huang et al., "Frustratingly Easy Transferability Estimation", ICML 2022. Reference:
  thuml/Transfer-Learning-Library ``tllib/ranking/transrate.py`` with ε = 1e-4 (read, not copied);
  ``../shared/reference/METRICS.md`` § transrate.
- Formula: centre F by its global mean; coding rate of a block Z (n×D) ``R(Z) = ½ logdet(I_D + Zᵀ Z / (n ε))``;
  ``TransRate = R(F) − (1/C) Σ_c R(F_c)``, F_c the rows of class c of the *globally* centred F (not re-centred)
  with n = n_c.
- Direction: higher = more transferable (no sign flip). The scale grows with D and with the feature scale (the
  coding rate is not scale-invariant: ε is absolute).
- Inputs: ``features`` N×D float32/float64, class ``labels`` (N,) of any hashable kind, ≥ 2 classes.
- Failure modes: NaN/inf, shape mismatch, < 2 classes -> ValueError. A class with one sample, constant columns and
  N < D are fine (I + ZᵀZ/(nε) is always positive definite).
- Precision: the reference computes in F's dtype, so for float32 input it differs from this float64 computation by
  up to ~1e-4 relative (the golden entries' rtol says how much per case).
- Complexity: by Sylvester's identity ``det(I_D + ZᵀZ/a) = det(I_n + Z Zᵀ/a)``, each block uses the smaller of its
  D×D or n×n Gram: O(N·D²) for R(F) when N > D and Σ_c n_c·min(n_c, D)·D for the classes, plus one Cholesky per
  block (min(n, D)³/3) instead of an LU ``slogdet``. With C = 100 classes of 500 samples at D = 2048 the class terms
  cost about a quarter of one N·D² Gram. Memory O(D² + n_c·D) (float64 temporaries in row chunks).
"""

from __future__ import annotations

import numpy as np
import scipy.linalg

from metrics._registry import PROPERTIES, register_metric
from metrics._validation import check_features, encode_labels
from metrics.logme import gram64

_EPSILON = 1e-4


def coding_rate(block: np.ndarray, mean: np.ndarray, *, epsilon: float = _EPSILON) -> float:
    """``R(Z) = ½ logdet(I + Zᵀ Z / (n ε))`` of ``Z = block − mean`` (block: n×D, any float dtype), in nats.

    Uses the n×n Gram when n < D (same determinant), and a Cholesky factor for the log-determinant.
    """
    n, d = block.shape
    if n < d:
        z = block.astype(np.float64) - mean
        gram = z @ z.T
    else:
        gram = gram64(block, center=mean)
    gram /= n * epsilon
    gram.flat[:: gram.shape[0] + 1] += 1.0
    factor = scipy.linalg.cholesky(gram, lower=True, check_finite=False)
    # ½ logdet = ½ · 2 Σ log diag(L)
    return float(np.log(np.diag(factor)).sum())


# not scale-invariant: ε is an absolute distortion, so the coding rate grows with the feature scale
@register_metric(
    "transrate",
    direction="higher = more transferable (no sign flip). The scale grows with D and with the feature scale (the coding rate is not scale-invariant: ε is absolute).",
    needs="features N×D float32/float64, class labels (N,) of any hashable kind, ≥ 2 classes.",
    summary="TransRate: coding-rate mutual information of features and labels",
    properties=PROPERTIES - {"feature_scale"},
)
def transrate(features: np.ndarray, labels: np.ndarray) -> float:
    """TransRate (higher = more transferable) of ``features`` (N×D) for class ``labels`` (N,), ε = 1e-4."""
    feats = check_features(features)
    n = feats.shape[0]
    encoded = encode_labels(labels, n)
    mean = feats.mean(axis=0, dtype=np.float64)
    total = coding_rate(feats, mean)
    order = np.argsort(encoded.y, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(encoded.counts)])
    per_class = [coding_rate(feats[order[bounds[c] : bounds[c + 1]]], mean) for c in range(encoded.n_classes)]
    return total - float(np.mean(per_class))
