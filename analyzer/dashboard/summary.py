"""The sentences and numbers around the charts: the headline's four figures and the ground-truth verdict.

Pure functions of :class:`analyzer.result.RankingResult`, so the wording is tested without Streamlit.
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from analyzer.explain import explain
from analyzer.report_types import AGGREGATE, MIN_AGREEMENT_CANDIDATES
from analyzer.result import RankingResult

#: What "accuracy" means on the ground-truth tab.
TRUTH_EXPLAINED = (
    "**Accuracy** here is the ground truth the run was checked against: each candidate's accuracy when actually "
    "trained on this dataset (in the demo, a linear probe on its frozen features, `analyzer.probe`; with "
    "`--ground-truth`, your CSV's `accuracy` column, e.g. fine-tuning accuracy)."
)
#: How to read the validation table.
VALIDATION_EXPLAINED = (
    "**Validation against the ground truth** (τ: rank correlation, 1 = same order; top-1 regret: accuracy lost "
    "by taking the metric's pick, 0 is perfect; top-3 recall: share of the 3 truly best in its top 3). "
    "Statistics need at least 3 candidates; fewer shows —."
)


@dataclass(frozen=True)
class Figure:
    """One headline figure: ``label``, ``value`` (already formatted), ``help`` (tooltip)."""

    label: str
    value: str
    help: str


def agreement_level(tau: float) -> str:
    """'strong' (mean tau >= 0.7), 'moderate' (>= 0.4) or 'weak'."""
    return "strong" if tau >= 0.7 else "moderate" if tau >= 0.4 else "weak"


def headline_figures(result: RankingResult) -> list[Figure]:
    """Lead over the runner-up, agreement between the metrics, metrics ranking the pick first, P(best)."""
    best = result.ranking[0]
    tied, runner = result.top_tie(), result.runner_up()
    lead = "—"
    if len(tied) > 1:
        lead = "tied"
    elif runner is not None and best.aggregate_score is not None:
        other_row = result.row(runner)
        other = None if other_row is None else other_row.aggregate_score
        lead = "—" if other is None else f"{other - best.aggregate_score:.2f} ranks"
    tau = result.mean_agreement()
    if len(result.ranking) < MIN_AGREEMENT_CANDIDATES:
        agreement = f"needs ≥ {MIN_AGREEMENT_CANDIDATES} candidates"
    else:
        agreement = "—" if tau is None else f"{agreement_level(tau)} ({tau:.2f})"
    first = [m for m in result.aggregate_metrics if best.metric_ranks.get(m) == 1]
    p_best = best.p_best
    return [
        Figure(
            "Lead over the runner-up",
            lead,
            "How many mean-rank places the runner-up is behind (lower mean rank is better); less than "
            f"{result.tie_margin():.2f} counts as a tie.",
        ),
        Figure(
            "Do the metrics agree?",
            agreement,
            "Mean Kendall's τ between the aggregate metrics' rankings: 1 = they order the candidates identically, "
            "0 = unrelated, −1 = reversed.",
        ),
        Figure(
            "Metrics ranking it first",
            f"{len(first)} / {len(result.aggregate_metrics)}",
            ", ".join(first) or "none",
        ),
        Figure(
            "P(best) in bootstrap",
            "no bootstrap" if p_best is None else f"{p_best:.0%}",
            "Share of bootstrap resamples in which it has the best aggregate.",
        ),
    ]


def truth_verdict(result: RankingResult) -> tuple[bool, str] | None:
    """``(right, sentence)``: was the recommended backbone the truly best one? None without ground truth for it."""
    truth = result.validation.truth if result.validation else {}
    tied = result.top_tie()
    if not truth or not tied or tied[0] not in truth:
        return None
    pick = tied[0]
    names = result.display_names
    best = max(truth, key=lambda m: truth[m])
    if truth[best] - truth[pick] <= 0:
        return True, f"The recommended backbone, {names[pick]}, was the best one (regret 0)."
    return False, (
        f"The recommended backbone, {names[pick]}, reached accuracy {truth[pick]:.3f}; the best, {names[best]}, "
        f"reached {truth[best]:.3f} (top-1 regret {truth[best] - truth[pick]:.3f})."
    )


def baseline_frame(result: RankingResult) -> pd.DataFrame:
    """Kendall's tau of each metric (and the aggregate) with the baselines, metrics by their shown names."""
    rows = [
        {
            "metric": name if name == AGGREGATE else explain(name).label,
            **{f"τ vs {explain(b).label}": v.get(b) for b in ("num_params", "source_accuracy")},
        }
        for name, v in result.baseline_agreement.items()
    ]
    return pd.DataFrame(rows)


def validation_frame(result: RankingResult) -> pd.DataFrame:
    """The validation rows with metrics by their shown names (report.json's snake_case columns kept)."""
    frame = pd.DataFrame([r.to_dict() for r in result.validation.rows] if result.validation else [])
    if not frame.empty:
        frame["metric"] = [n if n == AGGREGATE else explain(n).label for n in frame["metric"]]
    return frame
