"""ranking.csv: :func:`ranking_table`, one row per ranked candidate, best first (the dashboard shows the same
frame)."""

from __future__ import annotations

from typing import Any

from analyzer.result import RankingResult


def ranking_table(result: RankingResult) -> Any:  # -> pandas.DataFrame (imported lazily: slow to import)
    """The ranking as a DataFrame, one row per ranked candidate, best first.

    Columns: ``model`` (the full spec), ``name`` (its short display name), ``rank``, ``aggregate_score`` (mean
    rank, lower is better), then per metric (the baselines ``num_params`` and ``source_accuracy`` included,
    each once) ``<metric>`` (raw score) and ``<metric>_rank``, then ``p_best``, ``rank_lo``, ``rank_hi``,
    ``feature_dim``, ``extraction_seconds``, and when the run measured costs :data:`analyzer.cost_view.CSV_COLUMNS`
    (``params``, ``flops``, ..., ``within_budget``, ``on_pareto_front``). Missing values are empty (NaN / ``<NA>``).
    """
    import pandas as pd

    from analyzer import cost_view

    costed = cost_view.has_costs(result)
    names = result.metric_names()
    display = result.display_names
    rows = []
    for entry in result.ranking:
        row: dict[str, Any] = {
            "model": entry.model,
            "name": display[entry.model],
            "rank": entry.rank,
            "aggregate_score": entry.aggregate_score,
        }
        # the baselines live on the entry too; older reports kept them only there
        on_entry = {"num_params": entry.num_params, "source_accuracy": entry.source_accuracy}
        for name in names:
            row[name] = entry.scores.get(name, on_entry.get(name))
            row[f"{name}_rank"] = entry.metric_ranks.get(name)
        lo, hi = entry.rank_interval or (None, None)
        row.update(
            p_best=entry.p_best,
            rank_lo=lo,
            rank_hi=hi,
            feature_dim=entry.feature_dim,
            extraction_seconds=entry.extraction_seconds,
        )
        if costed:
            row.update(cost_view.csv_values(result, entry.model))
        rows.append(row)
    columns = ["model", "name", "rank", "aggregate_score"]
    for name in names:
        columns += [name, f"{name}_rank"]
    columns += ["p_best", "rank_lo", "rank_hi", "feature_dim", "extraction_seconds"]
    cost_columns = list(cost_view.CSV_COLUMNS) if costed else []
    columns += cost_columns
    frame = pd.DataFrame(rows, columns=columns)
    integers = ["rank", "rank_lo", "rank_hi", "feature_dim", *(f"{n}_rank" for n in names)]
    if "num_params" in names:
        integers.append("num_params")
    integers += [c for c in ("params", "flops") if c in cost_columns]
    for col in integers:  # integers with gaps stay integers (not 5.928e+05 floats) and sort numerically
        frame[col] = pd.array(pd.to_numeric(frame[col], errors="coerce").round(), dtype="Int64")
    for col in columns:
        if col not in integers and col not in ("model", "name", "within_budget", "on_pareto_front"):
            frame[col] = pd.to_numeric(frame[col], errors="coerce").astype(float)
    return frame


def render(result: RankingResult) -> str:
    """The ranking.csv text of ``result`` (columns as :func:`ranking_table`, empty cells for missing)."""
    return ranking_table(result).to_csv(index=False, lineterminator="\n", float_format="%.6g")
