"""Scale-free scoring: one global rescaling per candidate before the scale-dependent metrics, and the check that
flags degenerate features (issue 26, item 5).

Why: NCTI, SFDA, PED, TMI (and LogME, by 0.1 %) change when a backbone's features are multiplied by a constant
(their shrinkage ``exp(-5ρ)``, clamps such as TMI's ``min_dist = 1`` and PED's ``eps`` are absolute), so a ranking
of raw features partly ranks units: three copies of one ResNet-20 scaled by 0.01, 1 and 100 got aggregate ranks
4, 3 and 2 on notMNIST. The metric functions stay exact against their references (``metrics/`` is unchanged);
the ranking instead hands every metric that does not declare the ``feature_scale`` invariance the candidate's
features divided by one number computed on the full target set, :func:`feature_scale`: the root-mean-square
deviation of a feature value from its column mean. Every candidate then has features of RMS spread 1 (the order of
magnitude of the post-ReLU pools the references were tuned on), and ``c·X`` gives ``X`` back up to float32
rounding. The scores and bootstrap stages both call :func:`scoring_features` on the full set's features (the
bootstrap then takes its rows), so a resample sees exactly the rows of the rescaled full set.

Metrics that declare ``feature_scale`` (kNN with cosine distances, H-score, ...) and those that read no features
(LEEP, NCE) get the features unchanged, so their scores are what ``metrics.compute`` returns.

Degenerate features (:func:`degenerate_reason`): constant features (a backbone that ignores its input) or
features of numerical rank below the number of classes carry too little to rank; the ranking skips every label
metric on them with the reason, so the candidate is listed in the report's ``skipped`` entries and ranked after
every candidate with real features (a LogME of constant features came out above a real network's).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from analyzer.contracts import FeatureEntry
    from analyzer.records import RecordCache

#: Part of every score record's key: bump when what the metrics are handed changes (the rescaling, the check).
PREP_VERSION = 1
#: What the report's metric entries say about the features a rescaled metric was given.
RESCALED = "divided by the candidate's RMS feature deviation (scale-free ranking)"
#: Rows at most in one block of :func:`feature_scale` (float64 copies of a block, not of the whole matrix).
_BLOCK_ROWS = 8192
#: Rows of the first, cheap rank check (a subset's rank is at most the full set's).
_RANK_SAMPLE_ROWS = 512


def rescales(metric: str) -> bool:
    """True when the ranking hands ``metric`` rescaled features: it reads them and does not declare the
    ``feature_scale`` invariance (its score moves when the features are multiplied by a constant)."""
    import metrics as metrics_lib

    info = metrics_lib.info(metric)
    return info.kind == "label" and info.reads_features and "feature_scale" not in info.properties


def feature_scale(features: np.ndarray) -> float:
    """The candidate's scale: sqrt(mean over samples and dimensions of (x_ij - mean_j)²), float64 sums.

    Args:
        features: N×D, any float dtype (the store's float32).

    Returns:
        The RMS deviation of a feature value from its column mean (≥ 0; 0 for constant features). It is
        equivariant: ``feature_scale(c·X) = |c|·feature_scale(X)`` up to rounding.
    """
    x = np.asarray(features)
    n, d = x.shape
    if n == 0 or d == 0:
        return 0.0
    mean = x.mean(axis=0, dtype=np.float64)
    total = 0.0
    for start in range(0, n, _BLOCK_ROWS):
        block = x[start : start + _BLOCK_ROWS].astype(np.float64) - mean
        total += float(np.einsum("ij,ij->", block, block))
    return float(np.sqrt(total / (n * d)))


def scoring_features(metric: str, features: np.ndarray, scale: float | None = None) -> np.ndarray:
    """The features the ranking scores ``metric`` on: ``features / feature_scale(features)`` (same dtype) when
    :func:`rescales` says so and the scale is positive, else ``features`` itself (never modified).

    ``scale``: the full set's :func:`feature_scale`, when the caller has it (computed here otherwise).
    """
    if not rescales(metric):
        return features
    scale = feature_scale(features) if scale is None else scale
    if not np.isfinite(scale) or scale <= 0.0:
        return features  # constant features: the degenerate check skips them before any metric runs
    dtype = features.dtype if np.issubdtype(features.dtype, np.floating) else np.float64
    return np.multiply(features, 1.0 / scale, dtype=dtype)


def numerical_rank(features: np.ndarray) -> int:
    """Rank of the N×D matrix, with the tolerance ``σ_max · max(N, D) · eps`` of its own float type (float32
    features: rounding noise of float32 is not counted as a direction), computed from float64 singular values."""
    x = np.asarray(features)
    eps = float(np.finfo(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64).eps)
    singular = np.linalg.svd(x.astype(np.float64), compute_uv=False)
    if singular.size == 0 or singular[0] == 0.0:
        return 0
    return int(np.sum(singular > singular[0] * max(x.shape) * eps))


def degenerate_reason(features: np.ndarray, n_classes: int) -> str | None:
    """Why these features cannot be ranked, or None when they are fine.

    Degenerate: every sample has the same feature vector (the backbone ignores its input), or the features'
    numerical rank is below ``n_classes``. The rank is first taken on an evenly spaced subset of at most 512 rows
    (its rank bounds the full set's from below), and on every row only when the subset's is too low.
    """
    x = np.asarray(features)
    if x.shape[0] == 0 or feature_scale(x) == 0.0:
        return (
            "degenerate features: every sample has the same feature vector (the backbone ignores its input)"
        )
    rows = np.linspace(0, x.shape[0] - 1, num=min(x.shape[0], _RANK_SAMPLE_ROWS)).round().astype(int)
    if numerical_rank(x[np.unique(rows)]) >= n_classes:
        return None
    rank = _full_rank(x)
    if rank >= n_classes:
        return None
    return f"degenerate features: numerical rank {rank}, below the {n_classes} classes (too few directions to rank)"


def _full_rank(x: np.ndarray) -> int:
    """:func:`numerical_rank` of every row, through the smaller Gram matrix's eigenvalues when N > D."""
    n, d = x.shape
    if n <= 4 * d:
        return numerical_rank(x)
    gram = np.zeros((d, d))
    for start in range(0, n, _BLOCK_ROWS):
        block = x[start : start + _BLOCK_ROWS].astype(np.float64)
        gram += block.T @ block
    singular = np.sqrt(np.clip(np.linalg.eigvalsh(gram), 0.0, None))[::-1]
    if singular[0] == 0.0:
        return 0
    eps = float(np.finfo(x.dtype if np.issubdtype(x.dtype, np.floating) else np.float64).eps)
    return int(np.sum(singular > singular[0] * max(x.shape) * eps))


def checked_entry(records: RecordCache, entry: FeatureEntry) -> str | None:
    """:func:`degenerate_reason` of a store entry, remembered in its score records (the check reads every row)."""
    name = f"feature-check-v{PREP_VERSION}"
    cached: Any = records.get(name)
    if isinstance(cached, dict) and "reason" in cached:
        return cached["reason"]
    labels = np.asarray(entry.labels)
    reason = degenerate_reason(entry.features, int(np.unique(labels).size))
    records.put(name, {"reason": reason})
    return reason
