"""NCTI: Neural Collapse inspired Transferability Index (pool-level).

Card
----
- Paper: Wang et al., "How Far Pre-trained Models Are from Neural Collapse on the Target Dataset Informs their
  Transferability", ICCV 2023. Reference code: BUserName/NCTI ``metrics.py::NCTI_Score`` plus the pool
  normalisation of its ``evaluate_metric_group1_cpu.py`` (read, not copied).
- Formula, per candidate (raw terms, :func:`ncti_terms`): ``Z`` = the first 64 principal components of F;
  ``λ = max(exp(-Σ of the 32 largest PCA variances), 1e-10)``; an LDA on Z (scikit-learn, ``solver="svd"``
  when λ is exactly 1e-10, else ``solver="eigen", shrinkage=λ``) gives the projection L (centred) and the
  class probabilities P. Terms: ``seli_nuclear_norm = ‖L‖_*`` (within-class variability collapse proxy),
  ``ncc_lda_prob = mean_i P_{i, y_i}`` (nearest-class-centre proxy), ``vc_log_class_nuclear_norm =
  log Σ_c ‖P_c‖_*`` (P_c: the rows of class c). Pool step (:func:`finalize`): each term is min-max normalised
  over the candidates and ``NCTI = ncĉ + seli_hat - vc_hat``.
- Direction: higher = more transferable, in [-1, 2]. No sign flip (vc enters with a minus, as in the paper).
- Inputs: the pool's ``features`` (each N×D, D may differ between candidates), shared class ``labels`` (N,).
- Pool normalisation: a term equal across the whole pool (and every term in a pool of one) has
  ``max - min = 0``, a 0/0 in the reference; here its normalised value is defined as 0 for every candidate,
  so a pool of one scores 0.0 and a constant term does not affect the ordering. Scores are only comparable
  within one pool: adding or removing a candidate changes everyone's score.
- Failure modes: NaN/inf, shape mismatch, < 2 classes -> ValueError; N < 64 or D < 64 -> ValueError (the
  64-component PCA needs both); all feature columns constant -> ValueError. Constant columns among others and
  features of rank < 64 are fine (the extra components have zero variance). A class with one sample is fine.
  scikit-learn's "Variables are collinear" warning of the svd LDA is silenced
  on purpose: collinearity is expected after PCA of low-rank features and the reference's value is kept.
- Complexity: the PCA dominates: one N·D² float64 covariance product (in row chunks, no float64 copy of F)
  and one D×D symmetric eigendecomposition; then an LDA on N×64 (O(N·64²)), an SVD of the N×(C-1)
  projection and one SVD per class of its n_c×C probabilities. Memory O(D² + N·C).

Precision: the PCA is computed exactly in float64 through the covariance eigendecomposition. The reference
uses scikit-learn's ``PCA(64)`` in the input dtype, whose solver is exact (full SVD) for the small golden cases
but randomised, and unseeded, for large inputs; exactness and determinism are deliberate here.
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

from metrics._registry import register_pool_metric
from metrics._validation import check_features, encode_labels
from metrics.sfda import within_scatter

#: Principal components kept, and how many of the largest variances set the LDA shrinkage (reference values).
N_COMPONENTS = 64
SHRINKAGE_COMPONENTS = 32

TERMS = ("seli_nuclear_norm", "ncc_lda_prob", "vc_log_class_nuclear_norm")


def _principal_components(x: np.ndarray, n_components: int) -> tuple[np.ndarray, np.ndarray]:
    """Top principal-component scores (N×n_components, float64) and their variances (divided by N-1)."""
    n, d = x.shape
    mean = x.mean(axis=0, dtype=np.float64, keepdims=True)
    # within_scatter with a single "class" is the population covariance, computed in float64 chunks.
    covariance = within_scatter(x, np.zeros(n, dtype=np.int64), mean) * (n / (n - 1))
    if not np.trace(covariance) > 0:
        raise ValueError(
            "ncti: every feature column is constant, so there are no principal components to project on; "
            "check that the features were extracted correctly"
        )
    eigenvalues, eigenvectors = np.linalg.eigh(covariance)
    top = np.argsort(eigenvalues)[::-1][:n_components]
    basis = eigenvectors[:, top]
    scores = np.empty((n, n_components), dtype=np.float64)
    step = 8192
    for start in range(0, n, step):
        scores[start : start + step] = (x[start : start + step].astype(np.float64) - mean) @ basis
    return scores, np.maximum(eigenvalues[top], 0.0)


def ncti_terms(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Raw NCTI terms of one candidate (see the module card); not comparable across pools.

    Args:
        features: N×D float array, N ≥ 64 and D ≥ 64; not modified.
        labels: (N,) class labels of any hashable kind, at least 2 classes.

    Returns:
        ``{"seli_nuclear_norm", "ncc_lda_prob", "vc_log_class_nuclear_norm"}`` as floats.
    """
    x = check_features(features)
    encoded = encode_labels(labels, x.shape[0])
    n, d = x.shape
    if n < N_COMPONENTS or d < N_COMPONENTS:
        raise ValueError(
            f"ncti projects features on {N_COMPONENTS} principal components, so it needs at least "
            f"{N_COMPONENTS} samples and {N_COMPONENTS} dimensions; got N = {n}, D = {d}. "
            "Use more samples or a metric without this limit (e.g. logme or sfda)"
        )
    y = encoded.y
    z, variances = _principal_components(x, N_COMPONENTS)
    shrinkage = max(float(np.exp(-variances[:SHRINKAGE_COMPONENTS].sum())), 1e-10)
    if shrinkage == 1e-10:
        lda = LinearDiscriminantAnalysis(solver="svd")
    else:
        lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Variables are collinear")
        projected = lda.fit_transform(z, y)
        probs = lda.predict_proba(z)
    projected = projected - projected.mean(axis=0, keepdims=True)
    seli = float(np.linalg.svd(projected, compute_uv=False).sum())
    ncc = float(probs[np.arange(n), y].mean())
    class_nuclear = sum(
        float(np.linalg.svd(probs[y == c], compute_uv=False).sum()) for c in range(encoded.n_classes)
    )
    return {
        "seli_nuclear_norm": seli,
        "ncc_lda_prob": ncc,
        "vc_log_class_nuclear_norm": float(np.log(class_nuclear)),
    }


def _min_max(values: np.ndarray) -> np.ndarray:
    """(v - min)/(max - min); a constant vector (or a single value) maps to zeros (documented choice)."""
    spread = values.max() - values.min()
    if not spread > 0:
        return np.zeros_like(values)
    return (values - values.min()) / spread


def finalize(terms: list[dict[str, float]]) -> list[float]:
    """Pool step: ``ncĉ + seli_hat - vc_hat`` with each term min-max normalised over the pool.

    Args:
        terms: one :func:`ncti_terms` dict per candidate, in pool order.

    Returns:
        One score per candidate in [-1, 2]; higher = more transferable.
    """
    if not terms:
        raise ValueError("ncti: the pool is empty; give at least one candidate's terms")
    missing = [name for name in TERMS if any(name not in t for t in terms)]
    if missing:
        raise ValueError(
            f"ncti: terms {missing} are missing for some candidates; recompute them with ncti_terms"
        )
    table = {name: np.array([float(t[name]) for t in terms], dtype=np.float64) for name in TERMS}
    for name, values in table.items():
        if not np.isfinite(values).all():
            raise ValueError(f"ncti: term {name} is not finite for some candidates; recompute their features")
    scores = (
        _min_max(table["ncc_lda_prob"])
        + _min_max(table["seli_nuclear_norm"])
        - _min_max(table["vc_log_class_nuclear_norm"])
    )
    return [float(s) for s in scores]


@register_pool_metric(
    "ncti",
    finalize=finalize,
    summary="Neural Collapse inspired Transferability Index (Wang et al., ICCV 2023), normalised over the pool",
    properties={"label_renaming", "unmodified", "sample_order"},
)
def ncti(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """NCTI raw terms of one candidate; :func:`metrics.compute_pool` combines a pool's terms into scores.

    Higher final score = more transferable. See :mod:`metrics.ncti` for the card.
    """
    return ncti_terms(features, labels)
