"""What each column of the ranking means, read from where the project already says it.

A metric's explanation is its registry ``summary`` (:func:`metrics.info`) and the ``Direction`` and ``Inputs``
lines of the "Card" in its module docstring (``metrics/<name>.py``), so the dashboard never keeps a second copy
that could drift. The aggregate, the baselines and the data-free weighted alpha (:mod:`analyzer.spectrum`) are not
registered scorers; their few lines live here.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from functools import cache


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
        from analyzer import metric_record

        key = self.name if self.name != "aggregate_score" else None
        text = metric_record.record_text(key) if key else ""
        return "" if not text or text == "not measured" else f"Measured weighted τ vs probe accuracy: {text}"

    @property
    def help(self) -> str:
        parts = [self.summary, self.direction, f"Needs: {self.needs}" if self.needs else "", self.record]
        return " ".join(p[:1].upper() + p[1:].rstrip(".") + "." for p in parts if p)


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
    "alpha": Explanation(
        "alpha",
        "weighted alpha",
        "weightwatcher's mean alpha_weighted = alpha × log10(largest eigenvalue) over the weight layers: how well "
        "the backbone was trained, not how well it fits this dataset",
        "Lower is better, but only while the layers' alpha sits in the well-trained range 2–6",
        "the weights only (data-free)",
    ),
    "p_best": Explanation(
        "p_best",
        "P(best)",
        "Share of bootstrap resamples in which the candidate has the best aggregate",
        "Higher is better, in [0, 1]",
        "a bootstrap (n_bootstrap > 0)",
    ),
}


def _card_line(doc: str, key: str) -> str:
    """The text of the card's ``- Key: ...`` bullet (continuation lines joined), or ""."""
    match = re.search(rf"^- {key}:(.*(?:\n  .*)*)", doc, flags=re.MULTILINE)
    if not match:
        return ""
    text = re.sub(r"\s+", " ", match.group(1)).strip()
    return text.replace("``", "").replace("**", "")


@cache
def explain(name: str) -> Explanation:
    """The explanation of a ranking column: a metric (from its card), the aggregate, a baseline or alpha."""
    if name in _FIXED:
        return _FIXED[name]
    try:
        import metrics

        info = metrics.info(name)
    except (ImportError, ValueError):
        return Explanation(name, name, f"{name}: no description is registered", "", "")
    doc = sys.modules[info.func.__module__].__doc__ or ""
    direction = _card_line(doc, "Direction") or "Higher is better"
    needs = _card_line(doc, "Inputs")
    if info.requires:
        needs = f"{', '.join(info.requires)} (a backbone with a source classifier head); {needs}"
    return Explanation(name, name, info.summary, direction, needs)
