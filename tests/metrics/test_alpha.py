"""alpha: the data-free metric over weightwatcher's per-layer columns (lower is better)."""

from __future__ import annotations

import numpy as np
import pytest

import metrics


def test_alpha_is_the_mean_weighted_alpha_over_the_fitted_layers():
    alpha = np.array([2.0, np.nan, 4.0])  # the middle layer was too small for a fit
    log_lambda_max = np.array([0.5, 1.0, -0.25])
    value = metrics.compute_data_free("alpha", {"alpha": alpha, "log_spectral_norm": log_lambda_max})
    assert value == pytest.approx((2.0 * 0.5 + 4.0 * -0.25) / 2)
    assert np.isnan(metrics.compute_data_free("alpha", {"alpha": [np.nan], "log_spectral_norm": [1.0]}))


def test_alpha_declares_its_kind_input_and_direction():
    info = metrics.info("alpha")
    assert (info.kind, info.requires, info.higher_is_better) == ("data_free", ("weight_spectrum",), False)
    assert "alpha" in metrics.available(kind="data_free") and "alpha" not in metrics.available(kind="label")
    assert (
        info.why_not_applicable(available_inputs=[])
        == "alpha needs weight_spectrum of the backbone's weights"
    )


def test_alpha_refuses_columns_of_different_lengths():
    with pytest.raises(ValueError, match="one length"):
        metrics.compute_data_free("alpha", {"alpha": [3.0, 4.0], "log_spectral_norm": [1.0]})
