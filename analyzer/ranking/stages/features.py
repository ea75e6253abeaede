"""Features stage: one task per candidate extracts its features into the feature store (or finds them there).

A task returns the entry's key and the few meta values the report needs, never the arrays: the scores and
bootstrap tasks load the entry from the store themselves, wherever they run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from analyzer.contracts import Dataset
from analyzer.errors import Failure
from analyzer.executors import Executor, Task, TaskOutcome
from analyzer.ranking.progress import ProgressEvent


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


@dataclass(frozen=True)
class FeaturesOutput:
    """``extracted`` in the order of the specs; ``failed``: [{"model", "error"}] for candidates that failed."""

    extracted: tuple[Extracted, ...]
    failed: tuple[Mapping[str, str], ...] = field(default_factory=tuple)
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
) -> Extracted | ExtractFailure:
    """The task: extract ``spec``'s features of ``dataset`` into the store under ``cache_dir`` (or find them)."""
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


def run_features(
    inp: FeaturesInput, executor: Executor, emit: Callable[[ProgressEvent], None]
) -> FeaturesOutput:
    """Extract every candidate (one task each); a failing candidate is listed in ``failed``, the rest go on."""
    tasks = [
        Task(
            stage="features",
            model=spec,
            fn=extract_one,
            args=(inp.dataset, spec, str(inp.cache_dir)),
            kwargs={
                "device": inp.device,
                "batch_size": inp.batch_size,
                "num_workers": inp.num_workers,
                "progress": inp.progress,
            },
            # device None means "cuda when there is one": ask for a GPU (an executor without GPUs ignores it)
            num_gpus=0.0 if str(inp.device or "") == "cpu" else 1.0,
        )
        for spec in inp.specs
    ]

    def on_done(outcome: TaskOutcome, done: int, total: int) -> None:
        spec = outcome.task.model
        emit(ProgressEvent("features", spec, f"[rank] features: {spec}", done, total, outcome.node))
        error = _error_of(outcome)
        if error is not None:
            emit(ProgressEvent("failed", spec, f"[rank]   failed: {error}", done, total, outcome.node))

    outcomes = executor.run(tasks, on_done=on_done)
    extracted = tuple(o.value for o in outcomes if _error_of(o) is None)
    failed = tuple(
        {"model": o.task.model, "error": str(_error_of(o))} for o in outcomes if _error_of(o) is not None
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
