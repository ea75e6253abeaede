"""TMI: intra-class feature variance, measured as a class-conditional entropy.

Card
----
- Paper: Xu & Kang, "Fast and Accurate Transferability Measurement by Evaluating Intra-class Feature
  Variance", ICCV 2023. Reference code: snudatalab/TMI ``src/trf_measurement.py::TMI`` (non-commercial
  licence: implemented from the paper and METRICS.md, not copied), with k = 3, max-norm, ``min_dist = 1.0``.
- Formula: per class c with n_c samples, the Kozachenko–Leonenko entropy estimate
  ``h_c = -ψ(k) + ψ(n_c) + (D/n_c)·Σ_i log(2·ε_i)``, ε_i = max(Chebyshev distance from sample i to its k-th
  nearest other sample of class c, min_dist) (ψ = digamma; the max-norm unit ball has log-volume 0).
  ``TMI = mean over the finite classes of π_c·h_c``; classes with one sample contribute h_c = 0; classes
  with 2 ≤ n_c ≤ k have no k-th neighbour (infinite distance in the reference's tree search) and are
  dropped from both numerator and denominator, as the reference does.
- Direction: higher = more transferable, as in the paper (larger intra-class variance means a less collapsed,
  more adaptable representation). No sign flip.
- Inputs: ``features`` N×D (float32 or float64), class ``labels`` (N,) of any hashable kind, ≥ 2 classes.
- Scale dependence (kept from the reference, so ``feature_scale`` is *not* declared): ``min_dist = 1.0`` is an
  absolute distance. Features with a small spread (e.g. L2-normalised ones) are clamped everywhere, and the
  score then depends only on D and the class sizes; multiplying features by a constant changes the score.
  Compare candidates on features of comparable scale, or pass ``min_dist`` suited to the scale.
- Failure modes: NaN/inf, shape mismatch, < 2 classes -> ValueError; no class with more than k samples (every
  term dropped, the reference returns NaN) -> ValueError. Duplicate samples are fine (distance 0 is clamped).
  N < D and constant columns are fine (the distance is a max over dimensions).
- Complexity: exact brute-force Chebyshev distances within each class, Σ_c n_c²·D time (about N²·D/C),
  computed in row blocks so the extra memory is O(block·n_c), never n_c² for a large class. The global
  centring of the reference is skipped: distances are translation invariant.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.distance import cdist
from scipy.special import digamma

from metrics._registry import register_metric
from metrics._validation import NotApplicable, check_features, encode_labels

#: Distances computed per block: rows·n_c entries, about 32 MiB of float64.
_BLOCK_ENTRIES = 4_000_000


def _kth_neighbour_chebyshev(points: np.ndarray, k: int) -> np.ndarray:
    """Max-norm distance of each row of ``points`` (n×D, float64, n > k) to its k-th nearest *other* row.

    Equals the (k+1)-th smallest distance including the row itself (at distance 0), which is what the
    reference's tree query of k+1 neighbours returns, duplicates included.
    """
    n = points.shape[0]
    rows = max(1, _BLOCK_ENTRIES // n)
    out = np.empty(n, dtype=np.float64)
    for start in range(0, n, rows):
        block = cdist(points[start : start + rows], points, metric="chebyshev")
        out[start : start + rows] = np.partition(block, k, axis=1)[:, k]
    return out


def tmi_score(features: np.ndarray, labels: np.ndarray, *, k: int = 3, min_dist: float = 1.0) -> float:
    """TMI value: mean over classes of π_c·h_c (Kozachenko–Leonenko, Chebyshev, clamp ``min_dist``).

    Args:
        features: N×D float array; not modified.
        labels: (N,) class labels of any hashable kind, at least 2 classes.
        k: neighbour order of the entropy estimate (the reference uses 3).
        min_dist: lower clamp on neighbour distances, in feature units (the reference uses 1.0).

    Returns:
        The score in nats-per-sample units scaled by π_c; higher = more transferable.
    """
    if k < 1:
        raise ValueError(f"tmi: k must be a positive integer, got {k}; use the reference's k = 3")
    if not min_dist > 0:
        raise ValueError(f"tmi: min_dist must be positive (log(2·ε) needs ε > 0), got {min_dist}")
    x = check_features(features)
    encoded = encode_labels(labels, x.shape[0])
    n, d = x.shape
    terms = []
    for c, n_c in enumerate(encoded.counts):
        if n_c < 2:
            terms.append(0.0)  # the reference's h_c = 0 for a single-sample class (kept in the mean)
            continue
        if n_c <= k:
            continue  # no k-th neighbour: infinite in the reference, dropped from the mean
        points = x[encoded.y == c].astype(np.float64)
        eps = np.maximum(_kth_neighbour_chebyshev(points, k), min_dist)
        h_c = -digamma(k) + digamma(n_c) + d / n_c * float(np.log(2.0 * eps).sum())
        terms.append(n_c / n * h_c)
    if not any(n_c > k for n_c in encoded.counts):
        raise NotApplicable(
            f"tmi needs at least one class with more than k = {k} samples to estimate a k-nearest-neighbour "
            f"entropy; the largest class has {int(encoded.counts.max())}. Collect more samples per class"
        )
    return float(np.mean(terms))


@register_metric(
    "tmi",
    direction="higher = more transferable, as in the paper (larger intra-class variance means a less collapsed, more adaptable representation). No sign flip.",
    needs="features N×D (float32 or float64), class labels (N,) of any hashable kind, ≥ 2 classes.",
    summary="Intra-class feature variance as a class-conditional entropy (Xu & Kang, ICCV 2023)",
    properties={"sample_order", "label_renaming", "unmodified"},
)
def tmi(features: np.ndarray, labels: np.ndarray, *, k: int = 3, min_dist: float = 1.0) -> float:
    """TMI: mean over classes of π_c times the class's Kozachenko–Leonenko entropy (max-norm, k = 3).

    Higher = more transferable. Scale-dependent through ``min_dist`` (see :mod:`metrics.tmi`).
    """
    return tmi_score(features, labels, k=k, min_dist=min_dist)
