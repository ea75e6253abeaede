"""report.md: the ranking and everything needed to judge it, as GitHub-flavoured markdown."""

from __future__ import annotations

from analyzer import cost_view
from analyzer.report_types import MIN_AGREEMENT_CANDIDATES
from analyzer.reports._format import (
    baseline_rows,
    candidate_rows,
    failure_where,
    fmt,
    metric_card_rows,
    notes,
    ranking_rows,
    spectrum_rows,
    validation_note,
    validation_rows,
)
from analyzer.result import RankingResult


def _table(header: list[str], rows: list[list[str]], empty: str = "(none)") -> list[str]:
    if not rows:
        return [empty, ""]

    def line(cells: list[str]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return [line(header), "|" + "---|" * len(header), *(line(r) for r in rows), ""]


def render(result: RankingResult) -> str:
    """The report.md text of ``result``."""
    d = result.dataset
    few = result.few_per_class_note()
    out = [
        f"# Backbone ranking: {result.name}",
        "",
        f"**{result.headline()}**",
        "",
        *([f"> {few}", ""] if few else []),
        f"Created {result.created}. Dataset `{d.spec}` (fingerprint `{d.fingerprint}`): "
        f"{fmt(d.n_samples)} samples, {fmt(d.n_classes)} classes"
        + (f", {len(d.skipped)} unreadable samples skipped" if d.skipped else "")
        + ".",
        "",
        f"Aggregate: {result.aggregate.description}. Each cell is `score (rank)`; "
        "`p_best` and `rank 95%` come from the bootstrap.",
        "",
        "## Ranking",
        "",
        *_table(*ranking_rows(result)),
    ]
    if notes(result):
        out += [*notes(result), ""]
    header, candidates = candidate_rows(result)
    if candidates:
        out += ["## Candidates", "", "The tables name each candidate by a short name; its full spec:", ""]
        out += _table(header, [[name, f"`{spec}`"] for name, spec in candidates])
    if cost_view.has_costs(result):
        out += [
            "## Cost and budget",
            "",
            *cost_view.budget_lines(result),
            "",
            cost_view.measured_on(result),
            "",
        ]
        out += _table(cost_view.TABLE_HEADER, cost_view.table_rows(result))
        out += [
            f"Pareto front (mean rank against {(result.pareto or {}).get('axis')}): "
            f"{', '.join(result.display_names[m] for m in cost_view.front(result)) or 'none'}.",
            "",
        ]
    out += ["## How to read each metric", ""]
    out += _table(*metric_card_rows(result))
    display = result.display_names
    if result.bootstrap:
        out += ["## How sure are we", "", result.bootstrap.statement, ""]
    out += ["## Which metrics agree with each position", ""]
    for e in result.ranking:
        out.append(
            f"- **{display[e.model]}** (rank {fmt(e.rank)}): agree {', '.join(e.agree) or 'none'}; "
            f"disagree {', '.join(e.disagree) or 'none'}"
        )
    few = f"(needs at least {MIN_AGREEMENT_CANDIDATES} ranked candidates)"
    out += [
        "",
        "## Agreement with the baselines (Kendall tau)",
        "",
        "Simple priors often rival transferability metrics; a metric that only tracks model size adds little.",
        "",
        *_table(*baseline_rows(result), empty=few),
    ]
    names = list(result.agreement.metrics)
    if names and len(result.ranking) < MIN_AGREEMENT_CANDIDATES:
        out += ["## Rank agreement between metrics (Kendall tau)", "", few, ""]
    elif names:
        matrix = result.agreement.kendall_tau
        rows = [[a, *(fmt(v, 2) for v in row)] for a, row in zip(names, matrix, strict=False)]
        out += ["## Rank agreement between metrics (Kendall tau)", "", *_table(["", *names], rows)]
    out += ["## Weight spectrum (weightwatcher, data-free)", ""]
    out += [
        "Lower alpha (within 2-6) means better trained; compare `alpha_weighted` across architectures. "
        "Layers with alpha below 2 are flagged `over-trained?`, above 6 `under-trained?`.",
        "",
        *_table(*spectrum_rows(result)),
    ]
    if result.validation:
        out += ["## Validation against ground truth", "", *_table(*validation_rows(result))]
        note = validation_note(result)
        out += [note, ""] if note else []
    if result.skipped:
        out += ["## Skipped metrics", ""]
        out += [f"- {display[s.model]} / {s.metric}: {s.reason}" for s in result.skipped] + [""]
    if result.failed:
        out += ["## Failed candidates", ""]
        out += [f"- {failure_where(f, display)}: {f.error}" for f in result.failed] + [""]
    env = result.environment
    out += ["## Environment and timings", ""]
    out += [f"- versions: {', '.join(f'{k} {v}' for k, v in env.get('versions', {}).items())}"]
    out += [f"- hardware: {', '.join(f'{k} {v}' for k, v in env.get('hardware', {}).items())}"]
    out += [f"- timings: {', '.join(f'{k} {fmt(v, 3)}' for k, v in result.timings.items())}", ""]
    return "\n".join(out)
