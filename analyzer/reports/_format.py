"""Number formatting and the tables shared by the markdown and html writers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from analyzer.explain import explain
from analyzer.metric_record import record_text
from analyzer.report_types import MIN_AGREEMENT_CANDIDATES, VALIDATION_COLUMNS, Failed
from analyzer.result import RankingResult

#: What every view shows for a missing value.
MISSING = "—"
#: Readable names of the validation statistics (report.json keeps the snake_case keys).
VALIDATION_LABELS = {
    "weighted_tau": "weighted τ",
    "kendall_tau": "Kendall τ",
    "spearman": "Spearman",
    "pearson": "Pearson",
    "top1_regret": "top-1 regret",
    "top3_recall": "top-3 recall",
}


def fmt(value: Any, digits: int = 4) -> str:
    """A short human form: "—" for missing, whole numbers with thousands separators (also when stored as a
    float, as counts are in report.json's scores), other floats to ``digits`` significant figures."""
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return MISSING
        if value.is_integer() and abs(value) >= 10**digits:
            return f"{int(value):,}"
        return f"{value:.{digits}g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v, digits) for v in value) + "]"
    return str(value)


def ranking_rows(result: RankingResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the ranked table: per metric 'score (rank)', then the baselines once each. A metric of
    the weights (data-free) is marked ⚠ where most of the candidate's layers sit outside the well-trained band."""
    entries = [m for m in result.metrics if m.kind != "baseline"]
    display = result.display_names
    header = ["rank", "model", "mean rank", *(explain(m.name).label for m in entries), "params", "source acc"]
    header += ["p_best", "rank 95%", "dim", "extract s"]
    warnings = result.spectrum_warnings()
    rows = []
    for e in result.ranking:
        cells = [fmt(e.rank), display[e.model], fmt(e.aggregate_score, 3)]
        for m in entries:
            score, rank = e.scores.get(m.name), e.metric_ranks.get(m.name)
            cell = MISSING if score is None else f"{fmt(score)} ({fmt(rank)})"
            if m.kind == "data_free" and e.model in warnings:
                cell += " ⚠"
            cells.append(cell)
        interval = e.rank_interval
        cells += [
            fmt(e.num_params),
            fmt(e.source_accuracy, 3),
            fmt(e.p_best, 2),
            MISSING if not interval else f"{interval[0]}–{interval[1]}",
            fmt(e.feature_dim),
            fmt(e.extraction_seconds, 3),
        ]
        rows.append(cells)
    return header, rows


def failure_where(failure: Failed, display: Mapping[str, str]) -> str:
    """The candidate's short name, and the metric's after a slash when a metric failed on it (a bug)."""
    where = display.get(failure.model, failure.model)
    return where if failure.metric is None else f"{where} / {failure.metric}"


def notes(result: RankingResult) -> list[str]:
    """Sentences that must sit beside the ranking table: the alpha warnings (marked ⚠ in the table)."""
    return [f"⚠ {text}." for text in result.spectrum_warnings().values()]


def candidate_rows(result: RankingResult) -> tuple[list[str], list[list[str]]]:
    """The short name each table uses for a candidate, beside its full spec; no rows when every name is its spec."""
    display = result.display_names
    if all(name == spec for spec, name in display.items()):
        return ["name", "spec"], []
    return ["name", "spec"], [[name, spec] for spec, name in display.items()]


def metric_card_rows(result: RankingResult) -> tuple[list[str], list[list[str]]]:
    """One row per metric of the run (baselines excluded): whether it enters the aggregate, which way is better,
    what it needs, what it measures, and its measured record (weighted τ against probe accuracy on the targets
    of :mod:`analyzer.metric_record`). The text comes from :func:`analyzer.explain.explain`, as in the dashboard."""
    in_aggregate = set(result.aggregate.metrics)
    header = ["metric", "in aggregate", "direction", "needs", "what it measures", "measured weighted τ"]
    rows = []
    for entry in result.metrics:
        if entry.kind == "baseline":
            continue
        card = explain(entry.name)
        rows.append(
            [
                card.label,
                "yes" if entry.name in in_aggregate else "beside",
                card.direction,
                card.needs or "—",
                card.summary,
                record_text(entry.name),
            ]
        )
    return header, rows


def validation_rows(result: RankingResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the validation table (empty when there is no ground truth)."""
    if not result.validation:
        return [], []
    header = ["metric", "n", *(VALIDATION_LABELS.get(c, c) for c in VALIDATION_COLUMNS)]
    rows = [
        [r.metric, fmt(r.n_models), *(fmt(r.statistic(c), 3) for c in VALIDATION_COLUMNS)]
        for r in result.validation.rows
    ]
    return header, rows


def validation_note(result: RankingResult) -> str | None:
    """Why some validation statistics are "-": each needs 3 candidates with both a score and a ground truth."""
    if not result.validation:
        return None
    short = [r for r in result.validation.rows if r.n_models < 3]
    if not short:
        return None
    counts = ", ".join(f"{r.metric} {r.n_models}" for r in short[:6])
    more = f" and {len(short) - 6} more" if len(short) > 6 else ""
    return (
        "statistics shown as - need at least 3 candidates with both a score and a ground truth "
        f"(candidates with both: {counts}{more})"
    )


def spectrum_rows(result: RankingResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the weight-spectrum summary, one row per model with a spectrum."""
    header = [
        "model",
        "mean alpha",
        "weighted alpha",
        "log_spectral_norm",
        "stable_rank",
        "layers",
        "skipped",
        "flagged",
    ]
    rows = []
    display = result.display_names
    for model, s in result.spectrum.items():
        flagged = [f"{x.name} ({x.flag}, alpha {fmt(x.alpha, 3)})" for x in s.outside_band()]
        rows.append(
            [
                display[model],
                fmt(s.alpha, 3),
                fmt(s.alpha_weighted, 3),
                fmt(s.log_spectral_norm, 3),
                fmt(s.stable_rank, 3),
                str(len(s.layers)),
                str(len(s.skipped_layers)),
                "; ".join(flagged) or "none",
            ]
        )
    return header, rows


def baseline_rows(result: RankingResult) -> tuple[list[str], list[list[str]]]:
    """Kendall tau of each metric (and the aggregate) with the baselines."""
    header = ["metric", "tau vs num_params", "tau vs source_accuracy"]
    if len(result.ranking) < MIN_AGREEMENT_CANDIDATES:
        return header, []
    rows = [
        [name, fmt(v.get("num_params"), 3), fmt(v.get("source_accuracy"), 3)]
        for name, v in result.baseline_agreement.items()
    ]
    return header, rows
