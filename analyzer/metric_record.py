"""Each metric's measured record: how well its ranking predicted probe accuracy on the targets we measured.

The numbers live in one place, ``analyzer/metric_record.json`` (weighted Kendall tau per metric and target, from
``benchmarks/aggregate_study.py``); reports and the demo read them from here, so a user sees how far to trust each
column, and why the default aggregate is the set it is.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from analyzer.defaults import DEFAULT_AGGREGATE

RECORD_FILE = Path(__file__).with_name("metric_record.json")


@functools.cache
def load() -> dict[str, Any]:
    """The whole record: ``what``, ``measured_by``, ``targets`` {name: description}, ``weighted_tau``
    {metric: {target: tau}}, ``aggregate_reason`` (why the default aggregate has its members) and ``few_per_class``
    (which column to trust over the aggregate with few images per class, see :func:`few_per_class`)."""
    return json.loads(RECORD_FILE.read_text(encoding="utf-8"))


def weighted_tau(metric: str) -> dict[str, float]:
    """{target: weighted tau} measured for ``metric`` (empty when never measured); tau in [-1, 1], higher better."""
    return dict(load()["weighted_tau"].get(metric, {}))


def aggregate_key(members: Sequence[str]) -> str:
    """The record's row name of an aggregate, e.g. ``aggregate:logme+knn+ncti+sfda``."""
    return "aggregate:" + "+".join(members)


def record_text(metric: str) -> str:
    """One line, e.g. ``notmnist 0.878, cifar10 0.925, digits 1.000``; ``not measured`` when absent."""
    taus = weighted_tau(metric)
    return ", ".join(f"{t} {v:.3f}" for t, v in taus.items()) if taus else "not measured"


def worst_case(metric: str) -> float | None:
    """The lowest weighted tau over the measured targets, or None."""
    taus = weighted_tau(metric)
    return min(taus.values()) if taus else None


def few_per_class() -> dict[str, Any]:
    """The few-images-per-class rule: ``below`` (images per class under which it applies), ``trust`` (the metric
    whose column to trust over the aggregate there) and ``why`` (the evidence, one clause)."""
    return dict(load()["few_per_class"])


def few_shot_worst_case(metric: str) -> float | None:
    """The lowest weighted tau over the few-images-per-class targets (``<target>@<n>``), or None if unmeasured."""
    taus = [tau for target, tau in weighted_tau(metric).items() if "@" in target]
    return min(taus) if taus else None


def aggregate_reason(members: Sequence[str]) -> str:
    """Why the aggregate has these members: the recorded reason for the default, else 'chosen by the user'."""
    if sorted(members) == sorted(DEFAULT_AGGREGATE):
        return str(load()["aggregate_reason"])
    return "chosen for this run (not the default; see analyzer/metric_record.json for each metric's record)"
