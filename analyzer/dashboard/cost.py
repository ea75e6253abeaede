"""The dashboard's Cost view: the cost table and the Pareto chart (plotly) of :mod:`analyzer.cost_view`'s data.

Each candidate is a dot at (its cost on the Pareto axis, its aggregate mean rank; best at the top), in its colour
from :func:`analyzer.dashboard.charts.candidate_colors`; the Pareto front is joined by a red step line, candidates
over budget are hollow, the pick is ringed, and the budget's limit on the axis is a dashed line.
"""

from __future__ import annotations

from typing import Any

import plotly.graph_objects as go

from analyzer import cost_view
from analyzer.dashboard.charts import candidate_colors
from analyzer.result import RankingResult

FRONT_COLOR = "#d62728"


def cost_frame(result: RankingResult) -> Any:  # -> pandas.DataFrame
    """The cost table (:data:`analyzer.cost_view.TABLE_HEADER`), one row per ranked candidate, best first."""
    import pandas as pd

    return pd.DataFrame(cost_view.table_rows(result), columns=cost_view.TABLE_HEADER)


def pareto_figure(result: RankingResult) -> go.Figure | None:
    """The Pareto chart, or None when no ranked candidate has a cost on the axis."""
    view = cost_view.pareto_view(result)
    if view is None:
        return None
    colors = candidate_colors(result)
    fig = go.Figure()
    front = sorted((p for p in view.points if p.on_front), key=lambda p: p.value)
    fig.add_trace(
        go.Scatter(
            x=[p.value for p in front],
            y=[p.mean_rank for p in front],
            mode="lines",
            line={"shape": "hv", "color": FRONT_COLOR},
            name="Pareto front",
        )
    )
    for p in view.points:
        color = colors.get(p.model, "#1f77b4")
        fig.add_trace(
            go.Scatter(
                x=[p.value],
                y=[p.mean_rank],
                mode="markers+text",
                text=[p.name],
                textposition="top right",
                name=p.name,
                marker={
                    "size": 16 if p.picked else 11,
                    "color": color if p.within_budget is not False else "white",
                    "line": {"color": "black" if p.picked else color, "width": 3 if p.picked else 2},
                },
                hovertemplate=f"{p.name}<br>{view.axis} %{{x:.4g}}<br>mean rank %{{y:.2f}}"
                + ("<br>over budget" if p.within_budget is False else "")
                + ("<br>on the front" if p.on_front else "")
                + "<extra></extra>",
            )
        )
    if view.limit is not None:
        fig.add_vline(
            x=view.limit, line_dash="dash", line_color="grey", annotation_text=f"budget {view.limit:g}"
        )
    unit = view.unit.strip()
    fig.update_layout(
        title=f"Aggregate mean rank against {view.axis} (hollow: over budget; large, black ring: the pick)",
        xaxis_title=f"{view.axis} ({unit})" if unit else view.axis,
        yaxis_title="aggregate mean rank (lower is better)",
        yaxis_autorange="reversed",
        xaxis_type="log" if view.axis in ("flops", "params") else "linear",
        showlegend=False,
        height=460,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
    )
    return fig


def view(result: RankingResult) -> tuple[str, Any, go.Figure | None]:
    """The Cost tab: (markdown: the budget, the pick and how it was measured; the cost table or None; the
    Pareto chart or None)."""
    if not cost_view.has_costs(result):
        return (
            "This run has no measured cost (a report written before the cost stage): rank again to measure it.",
            None,
            None,
        )
    text = "\n\n".join([*cost_view.budget_lines(result), f"*{cost_view.measured_on(result)}*"])
    return text, cost_frame(result), pareto_figure(result)
