"""Validation of a ranking against ground truth: how well each metric, baseline and the aggregate ordered the
candidates by their true accuracy (the ``validation`` block of report.json)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer.errors import ReportError
from analyzer.report_types import AGGREGATE, Validation, ValidationRow

if TYPE_CHECKING:  # the result calls this module (RankingResult.with_validation): no runtime import back
    from analyzer.result import RankingResult


def validation_block(result: RankingResult, truth: dict[str, float]) -> Validation:
    """The ``validation`` block of ``result`` against ``truth`` ({model: accuracy}): ``truth`` (the models the
    report ranks) and one row per metric, baseline and the aggregate.

    ``truth`` is {model: accuracy} (higher is better). Each row holds weighted Kendall's tau (hyperbolic weights,
    scipy's ``weightedtau`` defaults, as the transferability papers compute it), Kendall's tau, Spearman, Pearson,
    top-1 regret (best true accuracy minus the true accuracy of the metric's top candidate: lower is better, in
    accuracy units) and top-3 recall (share of the 3 truly best found in the metric's top 3). Statistics are over
    the candidates that have both a score and a truth; fewer than 3 such candidates gives nulls. A truth naming
    fewer than 2 of the ranked models raises ReportError.
    """
    from metrics import correlation

    ranked = set(result.models)
    known = {m: float(a) for m, a in truth.items() if m in ranked}
    if len(known) < 2:
        raise ReportError(
            f"the ground truth names {len(known)} of the report's {len(ranked)} models "
            f"(truth has: {', '.join(sorted(truth)) or 'nothing'}; report has: {', '.join(result.models)})",
            "give a truth CSV whose `model` column uses the same specs as the report",
        )
    rows = []
    for name in [AGGREGATE, *result.metric_names()]:
        scores = result.oriented_scores(name)
        common = [m for m in result.models if m in scores and m in known]
        if len(common) < 3:
            rows.append(ValidationRow(metric=name, n_models=len(common)))
            continue
        s = np.array([scores[m] for m in common], dtype=float)
        t = np.array([known[m] for m in common], dtype=float)
        rows.append(
            ValidationRow(
                metric=name,
                n_models=len(common),
                weighted_tau=_finite(correlation.weighted_tau(s, t)),
                kendall_tau=_finite(correlation.kendall_tau(s, t)),
                spearman=_finite(correlation.spearman(s, t)),
                pearson=_finite(correlation.pearson(s, t)),
                top1_regret=_finite(correlation.top1_regret(s, t)),
                top3_recall=_finite(correlation.top_k_recall(s, t, k=3)),
            )
        )
    return Validation(truth=known, rows=rows)


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None
