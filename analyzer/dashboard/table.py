"""The ranking table as the dashboard shows it.

The data is :func:`analyzer.reports.csv_report.ranking_table`, the very frame ranking.csv is written from, so every
column name equals ranking.csv's. Only the presentation is decided here: which columns show and in what order,
each header's label and tooltip (from :mod:`analyzer.explain`), and a fixed number format per column.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from analyzer import cost_view
from analyzer.explain import explain
from analyzer.reports.csv_report import ranking_table
from analyzer.result import RankingResult

#: Streamlit/printf formats per kind of column: fixed decimals per column, thousands separators for counts.
FORMATS = {
    "score": "%.4f",
    "mean_rank": "%.2f",
    "share": "%.2f",
    "count": "localized",
    "rank": "%d",
    "seconds": "%.1f",
}


@dataclass(frozen=True)
class Column:
    """How one column of :func:`ranking_table` is shown: ``name`` (ranking.csv's), ``label``,
    ``help`` (tooltip), ``format`` (printf or "localized"), ``pinned`` (stays visible when scrolling)."""

    name: str
    label: str
    help: str
    format: str | None = None
    pinned: bool = False


def columns(result: RankingResult) -> list[Column]:
    """The columns shown, in order: rank and name (pinned), mean rank, each metric's score then its rank, the
    baselines, the bootstrap, feature dimension, extraction time, the measured cost, and the full spec last."""
    out = [
        Column(
            "rank",
            "rank",
            "Position in the ranking: 1 = recommended; tied candidates share a rank",
            "%d",
            True,
        ),
        Column("name", "name", "Short name of the candidate; its full spec is the last column", None, True),
    ]
    agg = explain("aggregate_score")
    out.append(Column("aggregate_score", agg.label, agg.help, FORMATS["mean_rank"]))
    baselines = result.metric_names("baseline")
    warned = result.spectrum_warnings()
    for entry in [m for m in result.metrics if m.name not in baselines]:
        name, card = entry.name, explain(entry.name)
        tip = card.help
        if entry.kind == "data_free" and warned:
            tip += " ⚠ " + "; ".join(warned.values()) + "."
        out.append(Column(name, card.label, tip, FORMATS["score"]))
        out.append(
            Column(f"{name}_rank", f"{card.label} rank", f"Rank on {card.label} alone (1 = best)", "%d")
        )
    for name in baselines:
        card = explain(name)
        fmt = FORMATS["count"] if name == "num_params" else "%.3f"
        out.append(Column(name, card.label, card.help, fmt))
    p_best = explain("p_best")
    out += [
        Column("p_best", p_best.label, p_best.help, FORMATS["share"]),
        Column("rank_lo", "rank 95% from", "Lower end of the bootstrap's 95 % rank interval", "%d"),
        Column("rank_hi", "rank 95% to", "Upper end of the bootstrap's 95 % rank interval", "%d"),
        Column(
            "feature_dim", "feature dim", "Length of the feature vector the backbone gives", FORMATS["count"]
        ),
        Column(
            "extraction_seconds", "extraction s", "Seconds spent extracting features (0 when cached)", "%.1f"
        ),
    ]
    out += [Column(name, *cost_view.CSV_COLUMN_HELP[name]) for name in cost_view.CSV_COLUMNS]
    out.append(Column("model", "spec", "The full model spec, as given to `rank`", None))
    return out


def display_table(result: RankingResult) -> tuple[Any, list[Column]]:
    """``(frame, columns)``: :func:`ranking_table` (ranking.csv's columns) and how to show it; columns with
    no value at all (no bootstrap: ``p_best``, rank interval) are left out of the display."""
    frame = ranking_table(result)
    shown = [c for c in columns(result) if c.name in frame.columns and frame[c.name].notna().any()]
    return frame, shown
