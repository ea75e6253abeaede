"""The weight-spectrum tab: per-layer alpha against weightwatcher's well-trained band, and one layer's eigenvalue
density with the power law weightwatcher fitted to it.

The flags are those :func:`analyzer.spectrum.alpha_flag` wrote into the report (the one rule); the band is
:data:`analyzer.spectrum.ALPHA_RANGE`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from analyzer.result import RankingResult
from analyzer.spectrum import ALPHA_RANGE, alpha_flag

#: One colour per flag, clearly apart: green inside the band, red below it, blue above it.
FLAG_COLORS = {"ok": "#2ca02c", "over-trained?": "#d62728", "under-trained?": "#1f77b4"}
LAYER_COLUMNS = [
    "depth",
    "layer_id",
    "name",
    "alpha",
    "alpha_weighted",
    "log_spectral_norm",
    "stable_rank",
    "flag",
]


def spectrum_models(result: RankingResult) -> list[str]:
    """Candidates with a weight-spectrum analysis, in ranking order."""
    ordered = [m for m in result.models if m in result.spectrum]
    return ordered + [m for m in result.spectrum if m not in ordered]


def spectrum_layers(result: RankingResult, model: str) -> pd.DataFrame:
    """Per-layer spectrum of ``model`` (columns :data:`LAYER_COLUMNS`); ``depth`` 0 is the first analysed layer."""
    entry = result.spectrum.get(model)
    rows = []
    for depth, layer in enumerate(entry.layers if entry is not None else ()):
        rows.append(
            {
                "depth": depth,
                "layer_id": str(layer.layer_id),
                "name": layer.name or str(layer.layer_id),
                "alpha": np.nan if layer.alpha is None else float(layer.alpha),
                "alpha_weighted": layer.alpha_weighted,
                "log_spectral_norm": layer.log_spectral_norm,
                "stable_rank": layer.stable_rank,
                "flag": layer.flag or alpha_flag(layer.alpha),
            }
        )
    return pd.DataFrame(rows, columns=LAYER_COLUMNS)


def alpha_chart(layers: pd.DataFrame, title: str) -> go.Figure:
    """Per-layer alpha in depth order, coloured by flag, over the shaded well-trained band (named in the legend,
    so no label sits on the line)."""
    lo, hi = ALPHA_RANGE
    fig = go.Figure()
    fig.add_hrect(y0=lo, y1=hi, fillcolor="#2ca02c", opacity=0.08, line_width=0)
    fig.add_trace(
        go.Scatter(
            x=layers["depth"], y=layers["alpha"], mode="lines", line={"color": "#bbb"}, showlegend=False
        )
    )
    for flag, color in FLAG_COLORS.items():
        part = layers[layers["flag"] == flag]
        fig.add_trace(
            go.Scatter(
                x=part["depth"],
                y=part["alpha"],
                mode="markers",
                marker={"color": color, "size": 9},
                name=flag if flag != "ok" else f"ok (well trained, {lo:g}–{hi:g}: shaded)",
                text=part["name"],
                hovertemplate="%{text}: alpha %{y:.2f}<extra></extra>",
                visible=True if len(part) else "legendonly",
            )
        )
    fig.update_layout(
        title=title,
        height=380,
        xaxis={"title": "layer depth (analysed layers, input → output)", "dtick": 1},
        yaxis_title="alpha",
        legend={"orientation": "h", "y": -0.25},
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig


def esd_histogram(eigenvalues: Sequence[float], bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Log-spaced histogram of a layer's eigenvalues: ``bins + 1`` edges and ``bins`` densities (count / (n * bin
    width)), so a power-law tail is a straight line on log-log axes. Non-positive and non-finite eigenvalues are
    dropped (no place on a log axis); ValueError when none remains."""
    values = np.asarray(eigenvalues, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        raise ValueError("the layer has no positive eigenvalues to plot; choose another layer")
    lo, hi = values.min(), values.max()
    if hi <= lo:  # one distinct value: a single bin around it
        lo, hi = lo / 1.1, hi * 1.1
    edges = np.logspace(np.log10(lo), np.log10(hi), bins + 1)
    counts, _ = np.histogram(values, bins=edges)
    return edges, counts / (values.size * np.diff(edges))


def power_law_line(centers: np.ndarray, density: np.ndarray, alpha: float) -> np.ndarray:
    """``c * lambda^-alpha`` over ``centers``, with ``c`` fitted (least squares in log space) to the upper half of
    the non-empty bins: the tail weightwatcher fits. ``alpha`` is the layer's fitted exponent from the report."""
    keep = density > 0
    tail = keep & (centers >= np.median(centers[keep]))
    log_c = np.mean(np.log(density[tail]) + alpha * np.log(centers[tail]))
    return np.exp(log_c) * centers ** (-alpha)


def esd_chart(eigenvalues: Sequence[float], alpha: float | None, title: str) -> go.Figure:
    """The eigenvalue density on log-log axes with readable ticks, and the fitted power law drawn over its tail."""
    edges, density = esd_histogram(eigenvalues)
    centers = np.sqrt(edges[:-1] * edges[1:])
    keep = density > 0  # empty bins cannot sit on a log axis
    fig = go.Figure(
        go.Scatter(
            x=centers[keep],
            y=density[keep],
            mode="markers+lines",
            name="eigenvalue density",
            line={"color": "#1f77b4"},
        )
    )
    if alpha is not None and np.isfinite(alpha) and keep.sum() >= 2:
        tail = centers >= np.median(centers[keep])
        line = power_law_line(centers, density, alpha)
        fig.add_trace(
            go.Scatter(
                x=centers[tail],
                y=line[tail],
                mode="lines",
                line={"color": "#d62728", "dash": "dash"},
                name=f"power law λ^-α, α = {alpha:.2f} (weightwatcher's fit)",
            )
        )
    fig.update_layout(
        title=title,
        xaxis={"type": "log", "title": "eigenvalue λ", "exponentformat": "power"},
        yaxis={"type": "log", "title": "density", "exponentformat": "power"},
        height=360,
        legend={"orientation": "h", "y": -0.3},
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig
