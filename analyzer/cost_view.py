"""What every view shows of the cost: the cost table, the Pareto chart's points and the budget/pick sentences.

One place reads the result's cost fields (each ranking row's ``cost`` and ``within_budget``, the ``budget``,
``recommendation`` and ``pareto`` blocks; :mod:`analyzer.budget` computes them), so report.md, report.html,
ranking.csv, the CLI and the dashboard's Cost view cannot disagree. ``pareto_figure`` draws the chart for report.html
(a matplotlib Figure, rendered by analyzer.reports.html); the dashboard draws the same :class:`ParetoView` with plotly
(:mod:`analyzer.dashboard.cost`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analyzer.budget import LIMITS, UNITS, Budget, format_quantity

if TYPE_CHECKING:
    from analyzer.result import RankingResult

#: ranking.csv's cost columns (after the others), the cost block's fields then the two judgements.
CSV_COLUMNS = (
    "params",
    "flops",
    "weights_mb",
    "latency_ms",
    "latency_iqr_ms",
    "throughput",
    "peak_memory_mb",
    "within_budget",
    "on_pareto_front",
)
#: ranking.csv's cost columns: (label, tooltip, format: printf or "localized") for the dashboard's table.
CSV_COLUMN_HELP: dict[str, tuple[str, str, str | None]] = {
    "params": ("params", "Parameters of the backbone (each tensor once)", "localized"),
    "flops": (
        "FLOPs/image",
        "FLOPs of one image's forward pass, as torch's FlopCounterMode counts them (2 per multiply-add)",
        "localized",
    ),
    "weights_mb": ("weights MiB", "Bytes of the parameters and buffers, in MiB", "%.2f"),
    "latency_ms": (
        "latency ms",
        "Batch-1 forward pass on the run's device: the median of the timed passes",
        "%.3f",
    ),
    "latency_iqr_ms": (
        "latency IQR ms",
        "Interquartile range of the timed batch-1 passes: how much latency moved",
        "%.3f",
    ),
    "throughput": ("images/s", "Images per second at the run's batch size", "%.0f"),
    "peak_memory_mb": (
        "peak MiB",
        "Peak memory of one forward pass at the run's batch size, weights and input included",
        "%.1f",
    ),
    "within_budget": (
        "within budget",
        "Every limit of the budget holds (empty: a limit could not be checked)",
        None,
    ),
    "on_pareto_front": (
        "Pareto",
        "No other candidate has both a better mean rank and a lower cost on the Pareto axis",
        None,
    ),
}
#: The cost table's header (reports, CLI, dashboard).
TABLE_HEADER = [
    "model",
    "params",
    "MFLOPs/image",
    "weights MiB",
    "latency ms (IQR)",
    "images/s",
    "peak MiB",
    "within budget",
    "Pareto",
]


def costs_of(result: RankingResult) -> dict[str, Mapping[str, Any] | None]:
    """``{model: cost block or None}`` in ranking order."""
    return {row.model: row.cost for row in result.ranking}


def has_costs(result: RankingResult) -> bool:
    return any(cost for cost in costs_of(result).values())


def front(result: RankingResult) -> list[str]:
    """The Pareto front's models that the ranking holds, in ranking order."""
    members = set((result.pareto or {}).get("models") or [])
    return [m for m in result.models if m in members]


def budget_of(result: RankingResult) -> Budget:
    return Budget.from_mapping(result.budget)


def within_text(value: bool | None) -> str:
    return {True: "yes", False: "over", None: "unknown"}[value]


def csv_values(result: RankingResult, model: str) -> dict[str, Any]:
    """ranking.csv's cost cells of one candidate (None where not measured)."""
    row = next(r for r in result.ranking if r.model == model)
    cost = row.cost or {}
    out: dict[str, Any] = {c: cost.get(c) for c in CSV_COLUMNS[:-2]}
    out["within_budget"] = row.within_budget
    out["on_pareto_front"] = model in front(result)
    return out


def table_rows(result: RankingResult) -> list[list[str]]:
    """The cost table, one row per ranked candidate (display names), best aggregate first."""
    names = result.display_names
    on_front = set(front(result))
    rows = []
    for row in result.ranking:
        cost = row.cost
        if not cost:
            rows.append([names[row.model], *["-"] * 6, within_text(row.within_budget), ""])
            continue
        rows.append(
            [
                names[row.model],
                format_quantity(cost["params"]),
                f"{cost['flops'] / 1e6:.1f}",
                f"{cost['weights_mb']:.2f}",
                f"{cost['latency_ms']:.3g} ({cost['latency_iqr_ms']:.2g})",
                f"{cost['throughput']:.0f}",
                f"{cost['peak_memory_mb']:.1f}",
                within_text(row.within_budget),
                "front" if row.model in on_front else "",
            ]
        )
    return rows


def measured_on(result: RankingResult) -> str:
    """One sentence: device, batch size, precision and repeats of the measurements."""
    cost = next((c for c in costs_of(result).values() if c), None)
    if cost is None:
        return "No cost was measured."
    return (
        f"Measured on {cost['device']} ({cost.get('precision', 'float32')}, input {'x'.join(map(str, cost['input_shape']))}): "
        f"latency at batch 1, median of {cost['latency_repeats']} timed passes (interquartile range in brackets); "
        f"images/s and peak memory ({cost['memory_measure']}) at batch {cost['batch_size']}; FLOPs per image as "
        "torch's FlopCounterMode counts them (2 per multiply-add)."
    )


def budget_lines(result: RankingResult) -> list[str]:
    """``Budget: ...`` and ``Pick: ...`` (what the CLI prints and every report states)."""
    lines = [f"Budget: {budget_of(result).describe()}."]
    pick = result.recommendation or {}
    if pick.get("reason"):
        lines.append(f"Pick: {pick['reason']}")
    return lines


@dataclass(frozen=True)
class ParetoPoint:
    """One candidate on the chart: aggregate mean rank (lower is better) against its cost on the axis."""

    model: str
    name: str
    mean_rank: float
    value: float
    on_front: bool
    within_budget: bool | None
    picked: bool


@dataclass(frozen=True)
class ParetoView:
    """The chart: ``points``, the ``axis`` and its unit, and the budget's ``limit`` on that axis (a line), if any."""

    axis: str
    unit: str
    points: tuple[ParetoPoint, ...]
    limit: float | None
    budget: str


def pareto_view(result: RankingResult) -> ParetoView | None:
    """The chart's data, or None when no ranked candidate has a cost on the Pareto axis."""
    pareto = result.pareto or {}
    axis = str(pareto.get("axis") or "latency_ms")
    on_front = set(front(result))
    picked = (result.recommendation or {}).get("model")
    names = result.display_names
    points = tuple(
        ParetoPoint(
            row.model,
            names[row.model],
            float(row.aggregate_score),
            float(row.cost[axis]),
            row.model in on_front,
            row.within_budget,
            row.model == picked,
        )
        for row in result.ranking
        if row.aggregate_score is not None and row.cost is not None and row.cost.get(axis) is not None
    )
    if not points:
        return None
    budget = budget_of(result)
    limit_key = next((key for key, field in LIMITS if field == axis), None)
    limit = getattr(budget, limit_key) if limit_key else None
    return ParetoView(axis, UNITS.get(axis, ""), points, limit, budget.describe())


def pareto_figure(view: ParetoView, plt: Any) -> Any:
    """The Pareto chart as a matplotlib Figure (``plt``: pyplot; report.html renders it to SVG): each candidate a
    dot (hollow when over budget), the front joined and highlighted, the pick ringed, the budget's limit on the axis
    a dashed line; mean rank: lower is better, best at the top."""
    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    front_points = sorted((p for p in view.points if p.on_front), key=lambda p: p.value)
    ax.step(
        [p.value for p in front_points],
        [p.mean_rank for p in front_points],
        where="post",
        color="#d62728",
        lw=1.2,
        label="Pareto front",
    )
    for p in view.points:
        filled = p.within_budget is not False
        color = "#d62728" if p.on_front else "#1f77b4"
        ax.scatter(p.value, p.mean_rank, s=40, color=color if filled else "white", edgecolors=color, zorder=3)
        if p.picked:
            ax.scatter(p.value, p.mean_rank, s=160, facecolors="none", edgecolors="black", zorder=4)
        ax.annotate(p.name, (p.value, p.mean_rank), fontsize=7, xytext=(4, 3), textcoords="offset points")
    if view.limit is not None:
        ax.axvline(view.limit, color="grey", ls="--", lw=1, label=f"budget {view.axis} <= {view.limit:g}")
    ax.set_xlabel(f"{view.axis}{' (' + view.unit.strip() + ')' if view.unit.strip() else ''}")
    ax.set_ylabel("aggregate mean rank (lower is better)")
    ax.invert_yaxis()
    if view.axis in ("flops", "params"):
        ax.set_xscale("log")
    ax.set_title(
        f"Rank against cost (hollow: over budget; ringed: the pick). Budget: {view.budget}", fontsize=8
    )
    ax.legend(fontsize=7, loc="lower right")
    return fig
