"""NCTI: Neural Collapse inspired Transferability Index (pool-level).

Card
----
- Paper: Wang et al., "How Far Pre-trained Models Are from Neural Collapse on the Target Dataset Informs their
  Transferability", ICCV 2023. Reference code: BUserName/NCTI ``metrics.py::NCTI_Score`` plus the pool
  normalisation of its ``evaluate_metric_group1_cpu.py`` (read, not copied).
- Formula, per candidate (raw terms, :func:`ncti_terms`): ``Z`` = the first 64 principal components of F;
  ``λ = max(exp(-Σ of the 32 largest PCA variances), 1e-10)``; an LDA on Z (scikit-learn, ``solver="svd"``
  when λ is exactly 1e-10 — reimplemented here step for step, see :func:`_lda_svd` — else
  ``solver="eigen", shrinkage=λ``) gives the projection L (centred) and the
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
  Collinear components (expected after PCA of low-rank features) raise no warning: scikit-learn's svd LDA
  warns "Variables are collinear" there, and the reference's value is kept without it.
- Complexity: the PCA dominates: one N·D² float64 covariance product (in row chunks, no float64 copy of F)
  and the top 64 eigenpairs of the D×D covariance (LAPACK's subset solver, O(D³) tridiagonalisation but
  no full set of eigenvectors); then an LDA on N×64 (O(N·64²)), an SVD of the N×(C-1)
  projection and one SVD per class of its n_c×C probabilities. Memory O(D² + N·C).

Precision: the PCA is computed exactly in float64 through the covariance eigendecomposition. The reference
uses scikit-learn's ``PCA(64)`` in the input dtype, whose solver is exact (full SVD) for the small golden cases
but randomised, and unseeded, for large inputs; exactness and determinism are deliberate here.
"""

from __future__ import annotations

import functools

import numpy as np
import scipy.linalg
import scipy.sparse
import scipy.special
from threadpoolctl import ThreadpoolController

from metrics._lapack import top_eigenpairs
from metrics._registry import register_pool_metric
from metrics._validation import NotApplicable, check_features, encode_labels
from metrics.logme import CHUNK_ROWS, gram64

#: Principal components kept, and how many of the largest variances set the LDA shrinkage (reference values).
N_COMPONENTS = 64
SHRINKAGE_COMPONENTS = 32

TERMS = ("seli_nuclear_norm", "ncc_lda_prob", "vc_log_class_nuclear_norm")


def _principal_components(
    x: np.ndarray, n_components: int, centred_gram: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Top principal-component scores (N×n_components, float64) and their variances (divided by N-1).

    ``centred_gram``: ``Σ (x - mean)(x - mean)ᵀ`` (D×D, float64) when the caller has it (the bootstrap's fast
    path down-dates the full set's); computed here otherwise."""
    n, d = x.shape
    mean = x.mean(axis=0, dtype=np.float64)
    covariance = (gram64(x, center=mean) if centred_gram is None else centred_gram) / (n - 1)
    if not np.trace(covariance) > 0:
        raise NotApplicable(
            "ncti: every feature column is constant, so there are no principal components to project on; "
            "check that the features were extracted correctly"
        )
    # only the top eigenpairs are needed: LAPACK's MRRR subset solver (evr) skips the other D - 64 eigenvectors
    # (at D = 768: 0.034 s against 0.058 s for all of them); called without holding the GIL (metrics/_lapack.py)
    eigenvalues, eigenvectors = top_eigenpairs(covariance, n_components)
    order = np.argsort(eigenvalues)[::-1]
    basis = eigenvectors[:, order]
    scores = np.empty((n, n_components), dtype=np.float64)
    # (x - mean)·B = x·B - mean·B: no centred N×D temporary; the cancellation costs ~eps64·|mean|/std, far
    # below the 1e-6 the scores need
    offset = mean @ basis
    for start in range(0, n, CHUNK_ROWS):
        np.matmul(
            x[start : start + CHUNK_ROWS].astype(np.float64), basis, out=scores[start : start + CHUNK_ROWS]
        )
    scores -= offset
    return scores, np.maximum(eigenvalues[order], 0.0)


def _r_factor(tall: np.ndarray) -> np.ndarray:
    """The p×p triangular factor R of a tall N×p matrix (N ≥ p): it has the matrix's singular values and right
    singular vectors, so an SVD of R replaces the SVD of the tall matrix without forming its N×p left vectors."""
    return scipy.linalg.qr(tall, mode="r", overwrite_a=False)[0][: tall.shape[1]]


def _tall_singular_values(matrix: np.ndarray) -> np.ndarray:
    """Singular values of an N×p matrix, through its R factor when it is tall."""
    if matrix.shape[0] <= matrix.shape[1]:
        return np.linalg.svd(matrix, compute_uv=False)
    return np.linalg.svd(_r_factor(matrix), compute_uv=False)


def _lda_svd(
    z: np.ndarray, y: np.ndarray, counts: np.ndarray, tol: float = 1e-4
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn 1.9's ``LinearDiscriminantAnalysis(solver="svd")``: ``(fit_transform(z), predict_proba(z))``.

    The same steps as its ``_solve_svd`` (within-class standardisation, SVD with rank threshold ``tol``,
    between-class SVD, coef/intercept), its ``transform`` and its ``predict_proba`` (softmax; expit for two
    classes), without its input validation and per-class copies, which dominate at this size (N×64).
    ``tests/metrics/test_ncti.py`` checks it against scikit-learn.
    """
    n = z.shape[0]
    n_classes = len(counts)
    priors = counts / n
    # class sums as a sparse one-hot product: the same additions in the same order as np.add.at (bit-identical),
    # 10x faster at N×64 (measured)
    onehot = scipy.sparse.csr_matrix((np.ones(n), (y, np.arange(n))), shape=(n_classes, n))
    means = np.asarray(onehot @ z)
    means /= counts[:, None]
    centred = z - means[y]
    std = centred.std(axis=0)
    std[std == 0] = 1.0
    _, singular, vt = scipy.linalg.svd(_r_factor(np.sqrt(1.0 / n) * (centred / std)))
    rank = int(np.sum(singular > tol))
    scalings = (vt[:rank] / std).T / singular[:rank]
    xbar = priors @ means
    between = (np.sqrt(n * priors / (n_classes - 1)) * (means - xbar).T).T @ scalings
    _, singular, vt = scipy.linalg.svd(between, full_matrices=False)
    rank = int(np.sum(singular > tol * singular[0]))
    scalings = scalings @ vt.T[:, :rank]
    coef = (means - xbar) @ scalings
    intercept = -0.5 * np.sum(coef**2, axis=1) + np.log(priors)
    coef = coef @ scalings.T
    intercept -= xbar @ coef.T
    projected = ((z - xbar) @ scalings)[:, : min(n_classes - 1, z.shape[1])]
    if n_classes == 2:  # scikit-learn folds the two classes into one decision function
        positive = scipy.special.expit(z @ (coef[1] - coef[0]) + (intercept[1] - intercept[0]))
        return projected, np.stack([1.0 - positive, positive], axis=1)
    decision = z @ coef.T + intercept
    decision -= decision.max(axis=1, keepdims=True)
    np.exp(decision, out=decision)
    decision /= decision.sum(axis=1, keepdims=True)
    return projected, decision


def _sum_of_class_nuclear_norms(probs: np.ndarray, y: np.ndarray, counts: np.ndarray) -> float:
    """``Σ_c ‖P_c‖_*`` over the row blocks P_c of each class; classes of equal size share one batched SVD."""
    order = np.argsort(y, kind="stable")
    grouped = probs[order]
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    total = 0.0
    for size in np.unique(counts):
        blocks = np.stack([grouped[start : start + size] for start in starts[counts == size]])
        total += float(np.linalg.svd(blocks, compute_uv=False).sum())
    return total


@functools.cache
def _blas_threads() -> ThreadpoolController:
    """threadpoolctl's controller of the BLAS / OpenMP libraries loaded now (numpy's and scipy's, which this module
    imports), found once: finding them walks every loaded shared library (about 4 ms of CPU with torch loaded), and
    the bootstrap limits the threads once per resample."""
    return ThreadpoolController()


def ncti_terms(
    features: np.ndarray,
    labels: np.ndarray,
    *,
    centred_gram: np.ndarray | None = None,
    components: tuple[np.ndarray, np.ndarray] | None = None,
) -> dict[str, float]:
    """Raw NCTI terms of one candidate (see the module card); not comparable across pools.

    Args:
        features: N×D float array, N ≥ 64 and D ≥ 64; not modified.
        labels: (N,) class labels of any hashable kind, at least 2 classes.
        centred_gram: optional precomputed ``Σ (x - mean)(x - mean)ᵀ`` of ``features`` (D×D float64).
        components: optional precomputed principal-component scores (N×64) and variances (64,), largest first
            (any sign per component: every term is invariant to it); used instead of the PCA.

    Returns:
        ``{"seli_nuclear_norm", "ncc_lda_prob", "vc_log_class_nuclear_norm"}`` as floats.
    """
    x = check_features(features)
    encoded = encode_labels(labels, x.shape[0])
    n, d = x.shape
    if n < N_COMPONENTS or d < N_COMPONENTS:
        raise NotApplicable(
            f"ncti projects features on {N_COMPONENTS} principal components, so it needs at least "
            f"{N_COMPONENTS} samples and {N_COMPONENTS} dimensions; got N = {n}, D = {d}. "
            "Use more samples or a metric without this limit (e.g. logme or sfda)"
        )
    y = encoded.y
    z, variances = _principal_components(x, N_COMPONENTS, centred_gram) if components is None else components
    shrinkage = max(float(np.exp(-variances[:SHRINKAGE_COMPONENTS].sum())), 1e-10)
    # everything after the PCA works on N×64 and n_c×C matrices, too small for BLAS threads to pay off: one
    # thread makes these steps about 1.5× faster and far less noisy on a shared 2-core machine (measured)
    with _blas_threads().limit(limits=1):
        if shrinkage == 1e-10:
            projected, probs = _lda_svd(z, y, encoded.counts.astype(np.float64))
        else:
            # imported here: scikit-learn takes ~0.5 s to import, and a cached ranking imports this module
            from sklearn.discriminant_analysis import LinearDiscriminantAnalysis

            lda = LinearDiscriminantAnalysis(solver="eigen", shrinkage=shrinkage)
            projected = lda.fit_transform(z, y)
            probs = lda.predict_proba(z)
        projected = projected - projected.mean(axis=0, keepdims=True)
        seli = float(_tall_singular_values(projected).sum())
        ncc = float(probs[np.arange(n), y].mean())
        class_nuclear = _sum_of_class_nuclear_norms(probs, y, encoded.counts)
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
    direction="higher = more transferable, in [-1, 2]. No sign flip (vc enters with a minus, as in the paper).",
    needs="the pool's features (each N×D, D may differ between candidates), shared class labels (N,).",
    finalize=finalize,
    summary="Neural Collapse inspired Transferability Index (Wang et al., ICCV 2023), normalised over the pool",
    properties={"label_renaming", "unmodified", "sample_order"},
)
def ncti(features: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """NCTI raw terms of one candidate; :func:`metrics.compute_pool` combines a pool's terms into scores.

    Higher final score = more transferable. See :mod:`metrics.ncti` for the card.
    """
    return ncti_terms(features, labels)
