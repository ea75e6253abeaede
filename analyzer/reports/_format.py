"""Number formatting and the tables shared by the markdown and html writers."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    """Header and rows of the ranked table: per metric 'score (rank)', then the baselines once each."""
    names = [n for n in result.metric_names() if n not in result.metric_names("baseline")]
    display = result.display_names
    labels = {n: "weighted alpha" if n == "alpha" else n for n in names}
    header = ["rank", "model", "mean rank", *(labels[n] for n in names), "params", "source acc"]
    header += ["p_best", "rank 95%", "dim", "extract s"]
    warnings = result.spectrum_warnings()
    rows = []
    for e in result.ranking:
        cells = [fmt(e.get("rank")), display[e["model"]], fmt(e.get("aggregate_score"), 3)]
        for n in names:
            score, rank = e["scores"].get(n), e["metric_ranks"].get(n)
            cell = MISSING if score is None else f"{fmt(score)} ({fmt(rank)})"
            if n == "alpha" and e["model"] in warnings:
                cell += " ⚠"
            cells.append(cell)
        interval = e.get("rank_interval")
        cells += [
            fmt(e.get("num_params")),
            fmt(e.get("source_accuracy"), 3),
            fmt(e.get("p_best"), 2),
            MISSING if not interval else f"{interval[0]}–{interval[1]}",
            fmt(e.get("feature_dim")),
            fmt(e.get("extraction_seconds"), 3),
        ]
        rows.append(cells)
    return header, rows


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
    from analyzer.explain import explain
    from analyzer.metric_record import record_text

    in_aggregate = set(result.aggregate.get("metrics") or [])
    header = ["metric", "in aggregate", "direction", "needs", "what it measures", "measured weighted τ"]
    rows = []
    for entry in result.metrics:
        if entry.get("kind") == "baseline":
            continue
        card = explain(entry["name"])
        rows.append(
            [
                card.label,
                "yes" if entry["name"] in in_aggregate else "beside",
                card.direction,
                card.needs or "—",
                card.summary,
                record_text(entry["name"]),
            ]
        )
    return header, rows


def validation_rows(result: RankingResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the validation table (empty when there is no ground truth)."""
    if not result.validation:
        return [], []
    columns = result.validation_columns
    header = ["metric", "n", *(VALIDATION_LABELS.get(c, c) for c in columns)]
    rows = [
        [r["metric"], fmt(r.get("n_models")), *(fmt(r.get(c), 3) for c in columns)]
        for r in result.validation["rows"]
    ]
    return header, rows


def validation_note(result: RankingResult) -> str | None:
    """Why some validation statistics are "-": each needs 3 candidates with both a score and a ground truth."""
    if not result.validation:
        return None
    short = [r for r in result.validation["rows"] if (r.get("n_models") or 0) < 3]
    if not short:
        return None
    counts = ", ".join(f"{r['metric']} {r.get('n_models') or 0}" for r in short[:6])
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
        if not isinstance(s, dict) or "layers" not in s:
            continue
        flagged = [
            f"{x['name']} ({x['flag']}, alpha {fmt(x['alpha'], 3)})"
            for x in s["layers"]
            if x.get("flag") != "ok"
        ]
        rows.append(
            [
                display[model],
                fmt(s.get("alpha"), 3),
                fmt(s.get("alpha_weighted"), 3),
                fmt(s.get("log_spectral_norm"), 3),
                fmt(s.get("stable_rank"), 3),
                str(len(s["layers"])),
                str(len(s.get("skipped_layers", []))),
                "; ".join(flagged) or "none",
            ]
        )
    return header, rows


def baseline_rows(result: RankingResult) -> tuple[list[str], list[list[str]]]:
    """Kendall tau of each metric (and the aggregate) with the baselines."""
    header = ["metric", "tau vs num_params", "tau vs source_accuracy"]
    if len(result.ranking) < result.min_agreement_candidates:
        return header, []
    rows = [
        [name, fmt(v.get("num_params"), 3), fmt(v.get("source_accuracy"), 3)]
        for name, v in result.baseline_agreement.items()
    ]
    return header, rows
