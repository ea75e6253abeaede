"""Cost stage: one task per candidate measures what it costs to run (:mod:`analyzer.cost`) on the run's device, at
its input size and the run's batch size, and records it under ``<cache>/cost``; a recorded cost runs no task.

The record's name (:func:`analyzer.cost.cost_record_name`) is found on the driver from the store entry's meta
(weights id, feature layer, input size) and the device (:func:`analyzer.cost.device_key`, which imports no torch),
so a second run measures nothing and loads no model. A candidate whose measurement fails keeps its place in the
ranking with no cost (``skipped`` lists it under ``cost`` with the reason).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.executors import Executor, Task
from analyzer.ranking.progress import COST, ProgressEvent, per_candidate_events
from analyzer.ranking.stages.features import Extracted
from analyzer.report_types import Skipped
from analyzer.result import RankingResult

if TYPE_CHECKING:
    from analyzer.budget import Budget

#: The progress events' stage name and the ``skipped`` rows' ``metric`` for a cost that could not be measured.
STAGE = "cost"


@dataclass(frozen=True)
class CostValue:
    """A task's result: the cost block (:meth:`analyzer.cost.Cost.to_dict`), or why it could not be measured."""

    cost: Mapping[str, Any] | None = None
    reason: str | None = None


def cost_records(cache_dir: str | Path) -> Any:
    """The cost records' :class:`~analyzer.records.RecordCache` (``<cache>/cost``)."""
    from analyzer.paths import CacheLayout
    from analyzer.records import RecordCache

    return RecordCache(CacheLayout(cache_dir).cost)


def measure_one(spec: str, cache_dir: str, record: str, device: str | None, batch_size: int) -> CostValue:
    """The task: load ``spec`` on ``device``, measure it (:func:`analyzer.cost.measure_cost`) and record it."""
    from analyzer.cost import measure_cost
    from analyzer.errors import Failure
    from analyzer.sources import load_backbone

    try:
        backbone = load_backbone(spec, device=device)
        cost = measure_cost(backbone, batch_size=batch_size).to_dict()
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - this candidate's cost is missing; the ranking goes on
        return CostValue(reason=f"cost not measured: {Failure.of(exc).line()}")
    cost_records(cache_dir).put(record, cost)
    return CostValue(cost)


@dataclass(frozen=True)
class CostInput:
    """The candidates, the run's device (None: CUDA when there is one) and its batch size (throughput, memory)."""

    cache_dir: Path
    candidates: tuple[Extracted, ...]
    device: str | None = None
    batch_size: int = 64


@dataclass(frozen=True)
class CostOutput:
    """``costs[model]``: the cost block, or None when not measured (then ``skipped`` has
    {"model", "metric": "cost", "reason"}); ``measured``: how many were measured by this run (0: all cached)."""

    costs: Mapping[str, Mapping[str, Any] | None] = field(default_factory=dict)
    skipped: tuple[Skipped, ...] = field(default_factory=tuple)
    measured: int = 0


def record_name(cache_dir: Path, candidate: Extracted, device: str, batch_size: int) -> str:
    """The cost record of ``candidate`` from its store entry's meta (weights id, feature layer, input size)."""
    import json

    from analyzer.cost import cost_record_name
    from analyzer.paths import CacheLayout
    from analyzer.store.files import META_FILE

    meta_path = CacheLayout(cache_dir).features / candidate.feature_key / META_FILE
    meta = json.loads(meta_path.read_text("utf-8"))
    shape = (meta.get("preprocess") or {}).get("input_size") or []
    weights_id = str(candidate.weights_id or meta.get("weights_id") or candidate.feature_key)
    return cost_record_name(weights_id, str(meta.get("feature_layer")), shape, device, batch_size)


def run_cost(inp: CostInput, executor: Executor, emit: Callable[[ProgressEvent], None]) -> CostOutput:
    """Measure every candidate not yet recorded for this device and batch size (one task each)."""
    from analyzer.cost import device_key

    device = device_key(inp.device)
    records = cost_records(inp.cache_dir)
    values: dict[str, CostValue] = {}
    tasks: list[Task] = []
    for c in inp.candidates:
        name = record_name(inp.cache_dir, c, device, inp.batch_size)
        cached = records.get(name)
        if isinstance(cached, dict):
            values[c.model] = CostValue(cached)
            continue
        tasks.append(
            Task(
                STAGE,
                c.model,
                measure_one,
                (c.model, str(inp.cache_dir), name, inp.device, inp.batch_size),
                num_gpus=0.0 if str(inp.device or "") == "cpu" else 1.0,
            )
        )
    total = len(inp.candidates)
    already = total - len(tasks)

    on_done = per_candidate_events(COST, "cost", total, already, emit)

    for outcome in executor.run(tasks, on_done=on_done):
        ok = outcome.ok and isinstance(outcome.value, CostValue)
        values[outcome.task.model] = (
            outcome.value if ok else CostValue(reason=f"cost not measured: {outcome.error}")
        )

    costs = {c.model: values[c.model].cost for c in inp.candidates}
    skipped = tuple(
        Skipped(model=c.model, metric=STAGE, reason=str(values[c.model].reason))
        for c in inp.candidates
        if values[c.model].cost is None
    )
    return CostOutput(costs, skipped, measured=len(tasks))


@dataclass(frozen=True)
class CostChoice:
    """What the aggregate stage needs to add the costs to the report: the measured ``costs`` (by model, None where
    not measured), the user's ``budget`` and the Pareto ``axis``."""

    costs: Mapping[str, Mapping[str, Any] | None]
    budget: Budget
    axis: str


def with_costs(result: RankingResult, choice: CostChoice) -> RankingResult:
    """``result`` with the costs: each row's ``cost`` and ``within_budget``, and the ``budget``,
    ``recommendation`` and ``pareto`` blocks (:func:`analyzer.budget.cost_blocks`); a new result (it is frozen)."""
    from analyzer.budget import cost_blocks

    rows = [(row.model, row.aggregate_score) for row in result.ranking]
    blocks = cost_blocks(
        rows, choice.costs, choice.budget, tied=result.top_tie(), axis=choice.axis, names=result.display_names
    )
    ranking = [
        replace(row, cost=choice.costs.get(row.model), within_budget=blocks["within_budget"][row.model])
        for row in result.ranking
    ]
    return replace(
        result,
        ranking=ranking,
        budget=blocks["budget"],
        recommendation=blocks["recommendation"],
        pareto=blocks["pareto"],
    )
