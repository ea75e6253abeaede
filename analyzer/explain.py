"""What each column of the ranking means, read from where the project declares it.

A metric's explanation is what it declared in the metrics registry (:class:`metrics.MetricInfo`: ``label``,
``explanation``, ``direction``, ``needs``), so no view keeps a second copy that could drift and no metric is
special-cased by name. The ranking's own columns (the aggregate's mean rank, the baselines, P(best)) are not
metrics; their few lines live here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from analyzer import metric_record


@dataclass(frozen=True)
class Explanation:
    """How to read one column: ``label`` (the header shown), ``summary`` (one line), ``direction`` (which way
    is better, and the range), ``needs`` (its inputs); ``help`` joins them for a tooltip."""

    name: str
    label: str
    summary: str
    direction: str
    needs: str

    @property
    def record(self) -> str:
        """How well this column predicted linear-probe accuracy where the project measured it
        (:mod:`analyzer.metric_record`, the README's validation); "" when never measured."""
        text = metric_record.record_text(self.name) if self.name != "aggregate_score" else ""
        return "" if not text or text == "not measured" else f"Measured weighted τ vs probe accuracy: {text}"

    @property
    def help(self) -> str:
        parts = [self.summary, self.direction, f"Needs: {self.needs}" if self.needs else "", self.record]
        return " ".join(p[:1].upper() + p[1:].rstrip(".") + "." for p in parts if p)


#: The ranking's columns that are not registered metrics.
_FIXED = {
    "aggregate_score": Explanation(
        "aggregate_score",
        "mean rank",
        "Mean of the candidate's ranks over the aggregate metrics",
        "Lower is better; 1 means first on every metric",
        "the metric scores",
    ),
    "num_params": Explanation(
        "num_params",
        "params",
        "Parameter count of the backbone: a baseline, not a transferability metric",
        "Higher counts as better for the baseline's rank",
        "the model only",
    ),
    "source_accuracy": Explanation(
        "source_accuracy",
        "source acc",
        "Accuracy on the backbone's source task (e.g. ImageNet top-1), when its card gives it: a baseline",
        "Higher is better, in [0, 1]",
        "the model card",
    ),
    "p_best": Explanation(
        "p_best",
        "P(best)",
        "Share of bootstrap resamples in which the candidate has the best aggregate",
        "Higher is better, in [0, 1]",
        "a bootstrap (n_bootstrap > 0)",
    ),
}


@cache
def explain(name: str) -> Explanation:
    """The explanation of a ranking column: a registered metric (as it declared itself), the aggregate's mean
    rank, a baseline or P(best); a name nothing declares gets a line saying so."""
    if name in _FIXED:
        return _FIXED[name]
    try:
        import metrics

        info = metrics.info(name)
    except (ImportError, ValueError):
        return Explanation(name, name, f"{name}: no description is registered", "", "")
    return Explanation(name, info.label, info.explanation, info.direction, info.needs)
