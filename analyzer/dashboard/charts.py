"""The dashboard's charts (plotly figures) in one visual language.

Every chart lists the candidates in the ranking's order (best on top) and gives each candidate the same colour
(:func:`candidate_colors`); the recommended candidates (those tied for first, :meth:`RankingResult.top_tie`) are
marked with a star in every chart. Classes get one colour each, the same in every feature-space view.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import plotly.express as px
import plotly.graph_objects as go

from analyzer.explain import explain
from analyzer.report_types import AGGREGATE, MIN_AGREEMENT_CANDIDATES
from analyzer.result import RankingResult

#: Distinct colours legible on white (D3's ten, then Plotly's Alphabet for larger pools).
PALETTE = px.colors.qualitative.D3 + px.colors.qualitative.Alphabet
STAR = "★ "
_MARGIN = {"l": 10, "r": 10, "t": 60, "b": 10}


def labels(result: RankingResult) -> dict[str, str]:
    """``{model: name shown in charts}``: the display name, starred for the recommended candidates."""
    names = result.display_names
    top = set(result.top_tie())
    return {m: (STAR + n if m in top else n) for m, n in names.items()}


def candidate_colors(result: RankingResult) -> dict[str, str]:
    """``{model: colour}``, assigned in ranking order, then failed candidates; the same in every chart."""
    models = list(dict.fromkeys([*result.models, *result.display_names]))
    return {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(models)}


def class_colors(class_labels: list[str]) -> dict[str, str]:
    """``{class label: colour}`` in the dataset's class order, identical for PCA, t-SNE and any candidate."""
    return {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(class_labels)}


def _height(n: int) -> int:
    return max(240, 30 * n + 120)


def mean_rank_chart(result: RankingResult) -> go.Figure | None:
    """Mean rank per candidate (a dot with its value; lower is better, best on top) with the bootstrap's 95 %
    rank interval as a bar behind it when there is one."""
    rows = [e for e in result.ranking if e.aggregate_score is not None]
    if not rows:
        return None
    names, colors = labels(result), candidate_colors(result)
    y = [names[e.model] for e in rows]
    fig = go.Figure()
    intervals = [e.rank_interval for e in rows]
    if any(intervals):
        xs: list[float | None] = []
        ys: list[str | None] = []
        for name, iv in zip(y, intervals, strict=True):
            if iv:  # a point interval still shows as a short segment
                xs += [iv[0] - 0.08, iv[1] + 0.08, None]
                ys += [name, name, None]
        fig.add_trace(
            go.Scatter(
                x=xs,
                y=ys,
                mode="lines",
                line={"color": "rgba(120,120,120,0.35)", "width": 12},
                name="rank in 95 % of bootstrap resamples",
                hoverinfo="skip",
            )
        )
    fig.add_trace(
        go.Scatter(
            y=y,
            x=[e.aggregate_score for e in rows],
            mode="markers+text",
            marker={
                "size": 14,
                "color": [colors[e.model] for e in rows],
                "line": {"width": 1, "color": "#333"},
            },
            text=[f"{e.aggregate_score:.2f}" for e in rows],
            textposition="middle right",
            name="mean rank",
        )
    )
    top = len(result.ranking)
    fig.update_xaxes(title="mean rank (lower is better)", range=[0.5, top + 0.7], dtick=1)
    fig.update_yaxes(categoryorder="array", categoryarray=y[::-1], title=None)
    fig.update_layout(
        title="Aggregate mean rank, best on top",
        height=_height(len(rows)),
        margin=_MARGIN,
        showlegend=False,  # the caption explains the dots and the grey segments (a legend crowds phones)
    )
    return fig


def metric_chart(result: RankingResult, name: str) -> go.Figure | None:
    """One metric's raw scores, candidates in ranking order with their colours, values written on the bars;
    a candidate whose layers sit outside the 2–6 band gets a warning sign on the chart of a metric of the weights
    (data-free)."""
    values: list[float] = []
    rows = []
    for e in result.ranking:
        value = e.scores.get(name)
        if value is not None:
            rows.append(e)
            values.append(value)
    if not rows:
        return None
    names, colors = labels(result), candidate_colors(result)
    entry = result.metric(name)
    warned = result.spectrum_warnings() if entry.kind == "data_free" else {}
    y = [names[e.model] + (" ⚠" if e.model in warned else "") for e in rows]
    card = explain(name)
    better = "higher" if entry.higher_is_better else "lower"
    fig = go.Figure(
        go.Bar(
            y=y,
            x=values,
            orientation="h",
            marker={"color": [colors[e.model] for e in rows]},
            text=[f"{v:.4g}" for v in values],
            textposition="auto",
            cliponaxis=False,
            hovertext=[e.model for e in rows],
        )
    )
    fig.update_yaxes(categoryorder="array", categoryarray=y[::-1], title=None)
    fig.update_layout(title=f"{card.label} ({better} is better)", height=_height(len(rows)), margin=_MARGIN)
    return fig


def agreement_heatmap(result: RankingResult) -> go.Figure | None:
    """Kendall's tau between the rankings of every pair of metrics, the aggregate and the baselines; None when
    the run has too few candidates for tau to mean anything (see ``min_agreement_candidates``)."""
    names = list(result.agreement.metrics)
    if len(result.ranking) < MIN_AGREEMENT_CANDIDATES or len(names) < 2:
        return None
    matrix = np.array([[np.nan if v is None else v for v in row] for row in result.agreement.kendall_tau])
    shown = [explain(n).label if n != AGGREGATE else "aggregate" for n in names]
    text = [["—" if not np.isfinite(v) else f"{v:.2f}" for v in row] for row in matrix]
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=shown,
            y=shown,
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            text=text,
            texttemplate="%{text}",
            colorbar={"title": "τ"},
        )
    )
    fig.update_layout(title="Metric agreement (Kendall's τ)", height=140 + 40 * len(names))
    fig.update_yaxes(autorange="reversed")
    return fig


def truth_scatter(result: RankingResult, name: str) -> go.Figure | None:
    """A metric's score (or the mean rank) against the true accuracy, one labelled point per candidate in its
    colour, the recommended ones as stars; the title gives the weighted tau of the validation."""
    if not result.validation:
        return None
    truth = result.validation.truth
    if name == AGGREGATE:
        values: dict[str, float | None] = {e.model: e.aggregate_score for e in result.ranking}
        axis = "mean rank (lower is better)"
    else:
        values = {e.model: e.scores.get(name) for e in result.ranking}
        better = "higher" if result.metric(name).higher_is_better else "lower"
        axis = f"{explain(name).label} ({better} is better)"
    xs_by_model = {m: float(v) for m, v in values.items() if v is not None and m in truth}
    models = [m for m in result.models if m in xs_by_model]
    if len(models) < 2:
        return None
    names, colors, top = result.display_names, candidate_colors(result), set(result.top_tie())
    fig = go.Figure(
        go.Scatter(
            x=[xs_by_model[m] for m in models],
            y=[truth[m] for m in models],
            mode="markers+text",
            text=[names[m] for m in models],
            textposition=_label_sides([xs_by_model[m] for m in models], name == AGGREGATE),
            textfont={"size": 10},
            marker={
                "size": [18 if m in top else 11 for m in models],
                "symbol": ["star" if m in top else "circle" for m in models],
                "color": [colors[m] for m in models],
                "line": {"width": 1, "color": "#333"},
            },
            hovertext=models,
        )
    )
    row = result.validation.row(name)
    tau = None if row is None else row.weighted_tau
    title = f"{'aggregate' if name == AGGREGATE else explain(name).label}: weighted τ = "
    title += "needs 3 candidates" if tau is None else f"{tau:.2f}"
    fig.update_layout(title=title, height=340, margin=_MARGIN, showlegend=False)
    xs = [xs_by_model[m] for m in models]
    pad = 0.25 * (max(xs) - min(xs) or 1.0)  # room for the point labels at both ends
    span = [min(xs) - pad, max(xs) + pad]
    fig.update_xaxes(title=axis, range=span[::-1] if name == AGGREGATE else span)
    fig.update_yaxes(title="linear-probe accuracy")
    return fig


def _label_sides(xs: list[float], reversed_axis: bool) -> list[str]:
    """Point-label positions that keep labels inside the plot: labels of points near the right edge go left."""
    lo, hi = min(xs), max(xs)
    out = []
    for x in xs:
        share = 0.5 if hi == lo else (x - lo) / (hi - lo)
        share = 1 - share if reversed_axis else share
        out.append("top left" if share > 0.66 else "top right" if share < 0.34 else "top center")
    return out


def confusion_heatmap(
    matrix: np.ndarray, counts: np.ndarray, class_labels: list[str], title: str
) -> go.Figure:
    """Row-normalised confusion between classes on categorical axes (every class labelled)."""
    fig = go.Figure(
        go.Heatmap(
            z=matrix,
            x=class_labels,
            y=class_labels,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            customdata=counts,
            hovertemplate="true %{y} → kNN %{x}: %{z:.0%} (%{customdata})<extra></extra>",
        )
    )
    fig.update_xaxes(type="category", title="class the neighbours vote for", tickmode="linear")
    fig.update_yaxes(type="category", title="true class", autorange="reversed", tickmode="linear")
    fig.update_layout(title=title, height=220 + 22 * len(class_labels), margin=_MARGIN)
    return fig


def projection_scatter(frame: Any, title: str, axes: tuple[str, str], order: list[str]) -> go.Figure:
    """Sampled points coloured by class (``frame`` has x, y, label), one fixed colour per class in ``order``."""
    fig = px.scatter(
        frame,
        x="x",
        y="y",
        color="label",
        title=title,
        opacity=0.8,
        labels={"x": axes[0], "y": axes[1], "label": "class"},
        category_orders={"label": order},
        color_discrete_map=class_colors(order),
    )
    fig.update_traces(marker={"size": 7})
    fig.update_layout(height=480, margin=_MARGIN)
    return fig


def feature_figures(
    proj: Any, conf: Any, class_names: dict[Any, str], method: str, name: str
) -> list[go.Figure]:
    """The feature-space tab's two charts: the 2-D projection (``proj``: :class:`features.Projection`) and the
    kNN confusion (``conf``: :class:`features.KnnConfusion`), classes named by ``class_names``."""
    import pandas as pd

    order = [class_names[c] for c in sorted(class_names)]
    labels = [class_names[v] for v in proj.labels.tolist()]
    frame = pd.DataFrame({"x": proj.coords[:, 0], "y": proj.coords[:, 1], "label": labels})
    # short titles (a phone cuts long ones); the sample size and variance go on the axes
    title = f"{method} of {name}"
    axes = ("PC1", "PC2") if proj.method == "pca" else ("t-SNE 1", "t-SNE 2")
    if proj.explained:
        axes = (f"PC1 ({proj.explained[0]:.0%} of variance)", f"PC2 ({proj.explained[1]:.0%})")
    axes = (f"{axes[0]}; {len(frame):,} of {conf.n_total:,} samples", axes[1])
    heat_labels = [class_names.get(c, str(c)) for c in conf.classes.tolist()]
    heat_title = f"{conf.k}-NN confusion, accuracy {conf.accuracy:.1%}"
    return [
        projection_scatter(frame, title, axes, order),
        confusion_heatmap(conf.matrix, conf.counts, heat_labels, heat_title),
    ]
