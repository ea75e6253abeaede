"""Features stage: one task per candidate extracts its features into the feature store (or finds them there).

A task returns the entry's key and the few meta values the report needs, never the arrays: the scores and
bootstrap tasks load the entry from the store themselves, wherever they run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.contracts import Dataset
from analyzer.errors import Failure
from analyzer.executors import Executor, Task, TaskOutcome
from analyzer.extract.api import DEFAULT_SHARD_SIZE
from analyzer.ranking.progress import FEATURES, ProgressEvent, stage_clock
from analyzer.report_types import Failed

if TYPE_CHECKING:
    from analyzer.extract.shards import ShardDone  # noqa: F401 - for the task's annotation


@dataclass(frozen=True)
class Extracted:
    """One candidate whose features are in the store.

    Attributes:
        model: its spec. feature_key: the store entry's key. feature_dim: D.
        has_source_probs: True when the backbone has a source classifier head (LEEP/NCE can run).
        samples_digest: a hash of the entry's sample ids (the bootstrap needs every candidate on the same samples).
        num_params, source_accuracy, weights_id, extraction_seconds: from the entry's meta.
    """

    model: str
    feature_key: str
    feature_dim: int
    has_source_probs: bool
    samples_digest: str
    num_params: int | None = None
    source_accuracy: float | None = None
    weights_id: str | None = None
    extraction_seconds: float | None = None


@dataclass(frozen=True)
class FeaturesInput:
    """What the features stage needs: the specs, the opened dataset and how to extract."""

    specs: tuple[str, ...]
    dataset: Dataset
    cache_dir: Path
    device: str | None = None
    batch_size: int = 64
    num_workers: int | None = None
    progress: bool = True
    #: rows per resumable shard of an entry (the store's default); see :func:`shard_plan`
    shard_size: int = DEFAULT_SHARD_SIZE
    #: more keyword arguments of the extraction, given to every entry and shard task: the model overrides
    #: (``feature_layer``, ``image_size``, ``mean``, ``std``) and ``amp``, as the ``extract`` command takes them
    #: (the ranking passes none)
    options: Mapping[str, Any] = field(default_factory=dict)
    #: the command the progress lines name (``[rank] features: ...``)
    command: str = "rank"


@dataclass(frozen=True)
class FeaturesOutput:
    """``extracted`` in the order of the specs; ``failed``: the report's entries of the candidates that failed."""

    extracted: tuple[Extracted, ...]
    failed: tuple[Failed, ...] = field(default_factory=tuple)
    #: spec -> message and fix apart, for :func:`analyzer.errors.every_candidate_failed`
    failures: Mapping[str, Failure] = field(default_factory=dict)


@dataclass(frozen=True)
class ExtractFailure:
    """A candidate that could not be loaded or extracted: one line, and the message and fix apart."""

    error: str
    failure: Failure | None = None


def extract_one(
    dataset: Dataset,
    spec: str,
    cache_dir: str | os.PathLike[str],
    *,
    device: str | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    progress: bool = True,
    shard_size: int = DEFAULT_SHARD_SIZE,
    **options: Any,
) -> Extracted | ExtractFailure:
    """The task: extract ``spec``'s features of ``dataset`` into the store under ``cache_dir`` (or find them; or
    assemble the entry from the shards that shard tasks stored: ``shard_size`` must be theirs). ``options``: more
    keyword arguments of :func:`analyzer.extract.extract_features` (see :attr:`FeaturesInput.options`)."""
    from analyzer.extract import extract_features
    from analyzer.store import FeatureStore, hash_sequence

    try:
        entry = extract_features(
            dataset,
            spec,
            store=FeatureStore(cache_dir),
            device=device,
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
            shard_size=shard_size,
            **options,
        )
        meta = entry.meta
        return Extracted(
            model=spec,
            feature_key=entry.key,
            feature_dim=entry.feature_dim
            or int(entry.features.shape[1]),  # meta's D spares loading the index
            has_source_probs=entry.source_probs is not None,
            samples_digest=hash_sequence(entry.sample_ids),
            num_params=None if meta.get("num_params") is None else int(meta["num_params"]),
            source_accuracy=None if meta.get("source_accuracy") is None else float(meta["source_accuracy"]),
            weights_id=str(meta.get("weights_id") or entry.key),
            extraction_seconds=(meta.get("timings") or {}).get("extraction_seconds"),
        )
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as this candidate's failure; the rest are ranked
        failure = Failure.of(exc)
        return ExtractFailure(failure.line(), failure)


#: A dataset with more than this many times ``shard_size`` samples is extracted in one task per shard on an executor
#: that runs elsewhere (Ray), so one big backbone spreads over several workers; in process it stays one task.
SHARD_TASKS_ABOVE = 4


def shard_plan(inp: FeaturesInput, executor: Executor) -> list[tuple[int, int]]:
    """The ``[start, stop)`` shards to extract as separate tasks, or [] for one task per candidate.

    Only on an executor other than the in-process one, for a checked dataset of more than
    ``SHARD_TASKS_ABOVE * shard_size`` samples, and when ``batch_size`` divides ``shard_size``: every batch then
    holds the same rows as in one task, so the features are equal to the bit.
    """
    n = len(inp.dataset)
    if executor.name == "local" or not inp.dataset.checked or inp.shard_size % inp.batch_size:
        return []
    if n <= SHARD_TASKS_ABOVE * inp.shard_size:
        return []
    from analyzer.extract.shards import shard_ranges

    return shard_ranges(n, inp.shard_size)


def extract_shard_task(
    dataset: Dataset, spec: str, cache_dir: str, start: int, stop: int, **kwargs: Any
) -> ShardDone | ExtractFailure:
    """The task for one shard (:func:`analyzer.extract.shards.extract_shard`); a failure comes back as data."""
    from analyzer.extract.shards import extract_shard

    try:
        return extract_shard(dataset, spec, cache_dir, start, stop, **kwargs)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as this candidate's failure; the rest are ranked
        failure = Failure.of(exc)
        return ExtractFailure(failure.line(), failure)


def run_features(
    inp: FeaturesInput, executor: Executor, emit: Callable[[ProgressEvent], None]
) -> FeaturesOutput:
    """Extract every candidate (one task each; for a large target on a cluster, one task per shard first, see
    :func:`shard_plan`); a failing candidate is listed in ``failed``, the rest go on."""
    # device None means "cuda when there is one": ask for a GPU (an executor without GPUs ignores it)
    num_gpus = 0.0 if str(inp.device or "") == "cpu" else 1.0
    extract_kwargs = {
        "device": inp.device,
        "batch_size": inp.batch_size,
        "num_workers": inp.num_workers,
        **inp.options,
    }
    shards = shard_plan(inp, executor)
    shard_tasks = [
        Task(
            "features",
            spec,
            extract_shard_task,
            (inp.dataset, spec, str(inp.cache_dir), start, stop),
            extract_kwargs,
            label=f"shard {i + 1}/{len(shards)}",
            num_gpus=num_gpus,
        )
        for spec in inp.specs
        for i, (start, stop) in enumerate(shards)
    ]
    total = len(shard_tasks) + len(inp.specs)
    offset = 0
    failed_on: dict[str, TaskOutcome] = {}  # a candidate's first failed shard

    clock = stage_clock()

    def on_done(outcome: TaskOutcome, done: int, _total: int) -> None:
        spec, label = outcome.task.model, outcome.task.label
        what = f"{spec} ({label})" if label else spec
        event = ProgressEvent(
            FEATURES,
            spec,
            f"[{inp.command}] features: {what}",
            offset + done,
            total,
            outcome.node,
            label,
            clock(),
        )
        emit(event)
        error = _error_of(outcome)
        if error is not None and spec not in failed_on:
            if label:
                failed_on[spec] = outcome
            emit(replace(event, message=f"[{inp.command}]   failed: {error}", error=error))

    from analyzer.extract.shards import ShardDone

    seconds: dict[str, float] = {}
    for o in executor.run(shard_tasks, on_done=on_done) if shard_tasks else []:
        if isinstance(o.value, ShardDone):
            seconds[o.task.model] = seconds.get(o.task.model, 0.0) + o.value.seconds
    offset = len(shard_tasks) + len(
        failed_on
    )  # a failed candidate's entry task is not run: it counts as done
    # Every shard stored: the entry is put once, under its lock, by the same task as without shards (it only
    # assembles the shards; a shard a crash lost is extracted there).
    tasks = [
        Task(
            "features",
            spec,
            extract_one,
            (inp.dataset, spec, str(inp.cache_dir)),
            {**extract_kwargs, "progress": inp.progress, "shard_size": inp.shard_size},
            num_gpus=num_gpus,
        )
        for spec in inp.specs
        if spec not in failed_on
    ]
    done_by_spec = {o.task.model: o for o in executor.run(tasks, on_done=on_done)}
    outcomes = [failed_on.get(spec) or done_by_spec[spec] for spec in inp.specs]
    extracted = tuple(
        replace(o.value, extraction_seconds=round(seconds[o.task.model], 4))
        if o.task.model in seconds and o.value.extraction_seconds is not None
        else o.value
        for o in outcomes
        if _error_of(o) is None
    )
    failed = tuple(
        Failed(model=o.task.model, error=str(_error_of(o))) for o in outcomes if _error_of(o) is not None
    )
    failures = {
        o.task.model: (
            o.value.failure
            if isinstance(o.value, ExtractFailure) and o.value.failure is not None
            else Failure(str(_error_of(o)), None, internal=True)  # the executor lost the task: not the input
        )
        for o in outcomes
        if _error_of(o) is not None
    }
    return FeaturesOutput(extracted, failed, failures)


def _error_of(outcome: TaskOutcome) -> str | None:
    if outcome.error is not None:
        return outcome.error
    return outcome.value.error if isinstance(outcome.value, ExtractFailure) else None
