"""Number formatting and the tables shared by the markdown and html writers."""

from __future__ import annotations

import math
from typing import Any

from analyzer.result import VALIDATION_COLUMNS, RankingResult


def fmt(value: Any, digits: int = 4) -> str:
    """A short human form: '-' for missing, ints with thousands separators, floats to ``digits`` significant."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        return f"{value:.{digits}g}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(fmt(v, digits) for v in value) + "]"
    return str(value)


def ranking_rows(result: RankingResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the ranked table: per metric 'score (rank)'."""
    names = result.metric_names()
    display = result.display_names
    header = ["rank", "model", "mean rank", *names, "p_best", "rank 95%", "dim", "extract s"]
    rows = []
    for e in result.ranking:
        cells = [fmt(e.get("rank")), display[e["model"]], fmt(e.get("aggregate_score"), 3)]
        for n in names:
            score, rank = e["scores"].get(n), e["metric_ranks"].get(n)
            cells.append("-" if score is None else f"{fmt(score)} ({fmt(rank)})")
        interval = e.get("rank_interval")
        cells += [
            fmt(e.get("p_best"), 2),
            "-" if not interval else f"{interval[0]}-{interval[1]}",
            fmt(e.get("feature_dim")),
            fmt(e.get("extraction_seconds"), 3),
        ]
        rows.append(cells)
    return header, rows


def candidate_rows(result: RankingResult) -> tuple[list[str], list[list[str]]]:
    """The short name each table uses for a candidate, beside its full spec; no rows when every name is its spec."""
    display = result.display_names
    if all(name == spec for spec, name in display.items()):
        return ["name", "spec"], []
    return ["name", "spec"], [[name, spec] for spec, name in display.items()]


def validation_rows(result: RankingResult) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the validation table (empty when there is no ground truth)."""
    if not result.validation:
        return [], []
    header = ["metric", "n", *VALIDATION_COLUMNS]
    rows = [
        [r["metric"], fmt(r.get("n_models")), *(fmt(r.get(c), 3) for c in VALIDATION_COLUMNS)]
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
        "alpha",
        "alpha_weighted",
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
    rows = [
        [name, fmt(v.get("num_params"), 3), fmt(v.get("source_accuracy"), 3)]
        for name, v in result.baseline_agreement.items()
    ]
    return header, rows
