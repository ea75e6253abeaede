"""alpha (weightwatcher): a data-free metric of how well a backbone was trained, from its weights' spectrum.

weightwatcher fits a power law ``rho(lambda) ~ lambda^-alpha`` to the eigenvalue spectrum of each layer's
``W^T W`` (:mod:`analyzer.spectrum` runs it). Heavy-Tailed Self-Regularisation theory reads a layer's alpha in
2-6 as well trained, lower (within that range) as better. The score is the mean over layers of
``alpha_weighted = alpha * log10(lambda_max)``, the form weightwatcher's authors advise for comparing different
architectures (it also accounts for the layer's scale). **Lower is better** (``higher_is_better=False``). It is
data-free: it says how well the backbone was trained, not how well its features fit the target, so the ranking
reports it beside the aggregate by default.

Reference: Martin, Peng & Mahoney, "Predicting trends in the quality of state-of-the-art neural networks without
access to training or testing data", Nature Communications 12, 4122 (2021).
"""

from __future__ import annotations

import numpy as np

from metrics._registry import register_data_free_metric


@register_data_free_metric(
    "alpha",
    summary="weight-spectrum alpha_weighted (weightwatcher): how well trained, not fit to this data",
    label="weighted alpha",
    explanation="weightwatcher's mean alpha_weighted = alpha × log10(largest eigenvalue) over the weight layers: how well the backbone was trained, not how well it fits this dataset",
    direction="Lower is better, but only while the layers' alpha sits in the well-trained range 2–6",
    needs="the weights only (data-free)",
    requires=("weight_spectrum",),
    higher_is_better=False,
)
def alpha_weighted(alpha: np.ndarray, log_spectral_norm: np.ndarray) -> float:
    """Mean over layers of alpha * log10(lambda_max) (weightwatcher's ``alpha_weighted``); lower is better.

    ``alpha``: (L,) per-layer power-law exponents; ``log_spectral_norm``: (L,) per-layer log10 of the largest
    eigenvalue of ``W^T W``. Layers where either is missing (NaN: too small for a fit) are left out; no layer
    left gives NaN. Inputs are not modified.
    """
    alpha = np.asarray(alpha, dtype=float)
    log_lambda_max = np.asarray(log_spectral_norm, dtype=float)
    if alpha.shape != log_lambda_max.shape or alpha.ndim != 1:
        raise ValueError(
            f"alpha and log_spectral_norm must be per-layer vectors of one length; got {alpha.shape} and "
            f"{log_lambda_max.shape}"
        )
    weighted = alpha * log_lambda_max
    kept = weighted[np.isfinite(weighted)]
    return float(np.mean(kept)) if kept.size else float("nan")
