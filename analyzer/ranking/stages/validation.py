"""Validation stage: the finished ranking compared with ground-truth accuracies (when the user gives them).

The truth is read first, before any work (:func:`read_truth`), so a bad truth file fails fast; the comparison
itself (:meth:`analyzer.result.RankingResult.with_validation`) runs last, on the driver.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from analyzer.result import RankingResult
from analyzer.truth import load_ground_truth

#: What the user may pass as ground truth: {model: accuracy} or the path of a truth CSV.
GroundTruth = Mapping[str, float] | str | os.PathLike[str]


def read_truth(ground_truth: GroundTruth | None, *, dataset_name: str) -> dict[str, float] | None:
    """{model: accuracy} from a mapping or a truth CSV (rows of ``dataset_name`` where it has several), or None."""
    if ground_truth is None:
        return None
    if isinstance(ground_truth, Mapping):
        return dict(ground_truth)
    return load_ground_truth(ground_truth, dataset=dataset_name)


def run_validation(result: RankingResult, truth: Mapping[str, float] | None) -> RankingResult:
    """``result`` with its ``validation`` block when there is a truth (a new result: results are frozen)."""
    return result if truth is None else result.with_validation(truth)
