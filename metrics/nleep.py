"""N-LEEP: LEEP with a Gaussian mixture on PCA-reduced features as the "source classifier".

Card
----
- Paper: Li et al., "Ranking Neural Checkpoints", CVPR 2021. Reference code: TencentARC/SFDA
  ``metrics.py::NLEEP`` (read, not copied).
- Formula: ``Z = PCA(n_components=0.8)(F)`` (fewest components reaching 80 % explained variance);
  ``θ = GaussianMixture(5·C).fit(Z).predict_proba(Z)`` (N×K); ``J[c, z] = Σ_{i: y_i = c} θ_iz / N``,
  ``P(c | z) = J[c, z] / Σ_c' J[c', z]``; ``NLEEP = mean_i Σ_z θ_iz·P(y_i | z)`` — the reference's form,
  *without* LEEP's log, so the value is an expected empirical probability in (0, 1].
- Direction: higher = more transferable. No sign flip.
- Inputs: ``features`` N×D, class ``labels`` (N,), ≥ 2 classes and N ≥ 5·C samples (one per mixture
  component). ``random_state`` (default 0, the seed the golden values use) seeds the mixture's k-means
  initialisation: the reference sets no seed, and the value moves by about ±0.01 between seeds, so the
  metric is registered as stochastic. ``component_ratio`` (default 5) sets K = ratio·C.
- Precision: the mixture is fitted in float64 whatever the input dtype. The reference fits float32 features in
  float32, which fails with "ill-defined empirical covariance" for many components; float64 does not.
  ``reg_covar`` stays at scikit-learn's 1e-6 like the reference.
- Failure modes: NaN/inf, shape mismatch, < 2 classes -> ValueError; fewer samples than mixture components
  -> ValueError (lower ``component_ratio`` or add samples); features with zero total variance -> ValueError.
  The mixture's ConvergenceWarning (EM stopping at max_iter = 100) is silenced on purpose: the reference
  uses the same cap and its value is the one reproduced; a warning per candidate would flood the logs.
  Constant columns and N < D are fine (PCA removes them).
- Complexity (the cost is the mixture fit, which dominates by far): PCA O(N·D·min(N, D)) (covariance
  eigendecomposition when N ≥ D: N·D² + D³); k-means initialisation plus at most 100 EM iterations, each
  O(N·K·k²) time with k the number of PCA components and K = 5·C, and O(N·K + K·k²) memory. At N = 50 000,
  C = 100 (K = 500) and k ≈ 200 one EM iteration is about 10¹² flops: minutes to hours on a laptop CPU
  (the reference does not finish within 4 minutes there). Use smaller N (subsample per class) for big pools.
"""

from __future__ import annotations

import warnings

import numpy as np

from metrics._registry import register_metric
from metrics._validation import NotApplicable, check_features, encode_labels


def expected_empirical_prediction(theta: np.ndarray, y: np.ndarray, n_classes: int) -> float:
    """``mean_i Σ_z θ_iz·P(y_i | z)`` with ``P(c | z)`` from the joint ``J = onehot(y)ᵀ θ / N``.

    Args:
        theta: N×K float64 soft assignments (rows sum to 1).
        y: (N,) codes 0..C-1.

    A component with no mass (all θ_iz = 0) has an undefined conditional; it contributes nothing (θ_iz = 0
    for every i) so its conditional is set to 0 instead of the reference's NaN.
    """
    n = theta.shape[0]
    joint = np.zeros((n_classes, theta.shape[1]), dtype=np.float64)
    np.add.at(joint, y, theta / n)
    mass = joint.sum(axis=0, keepdims=True)
    conditional = np.divide(joint, mass, out=np.zeros_like(joint), where=mass > 0)
    return float(np.einsum("iz,iz->i", theta, conditional[y]).mean())


@register_metric(
    "nleep",
    direction="higher = more transferable. No sign flip.",
    needs="features N×D, class labels (N,), ≥ 2 classes and N ≥ 5·C samples (one per mixture component). random_state (default 0, the seed the golden values use) seeds the mixture's k-means initialisation: the reference sets no seed, and the value moves by about ±0.01 between seeds, so the metric is registered as stochastic. component_ratio (default 5) sets K = ratio·C.",
    summary="N-LEEP: LEEP over a Gaussian mixture on PCA features (Li et al., CVPR 2021)",
    stochastic=True,
    properties={"label_renaming", "unmodified"},
)
def nleep(
    features: np.ndarray, labels: np.ndarray, *, random_state: int = 0, component_ratio: int = 5
) -> float:
    """N-LEEP in (0, 1]: expected empirical prediction of the labels from a 5·C-component Gaussian mixture.

    Higher = more transferable. Seeded by ``random_state`` (default 0); see :mod:`metrics.nleep` for the cost,
    which is dominated by the mixture's EM (O(N·K·k²) per iteration).
    """
    if component_ratio < 1:
        raise ValueError(f"nleep: component_ratio must be a positive integer, got {component_ratio}")
    x = check_features(features)
    encoded = encode_labels(labels, x.shape[0])
    n, d = x.shape
    n_components = component_ratio * encoded.n_classes
    if n < n_components:
        raise NotApplicable(
            f"nleep fits {n_components} mixture components ({component_ratio} per class) but has only {n} "
            "samples; add samples or lower component_ratio"
        )
    x64 = x.astype(np.float64)  # always a copy: float64 avoids the reference's float32 mixture failures
    if not np.any(x64.var(axis=0) > 0):
        raise NotApplicable(
            "nleep: every feature column is constant, so PCA has no variance to keep; check the extraction"
        )
    # The covariance eigendecomposition gives the same components as the full SVD for N >= D at a fraction
    # of the cost (N·D² + D³ instead of an N×D SVD).
    solver = "covariance_eigh" if n >= d else "full"
    # imported here: scikit-learn takes ~0.5 s to import, and a cached ranking imports this module
    from sklearn.decomposition import PCA
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    z = PCA(n_components=0.8, svd_solver=solver).fit_transform(x64)
    mixture = GaussianMixture(n_components=n_components, random_state=random_state)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        theta = mixture.fit(z).predict_proba(z)
    return expected_empirical_prediction(theta, encoded.y, encoded.n_classes)
