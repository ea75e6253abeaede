"""Extraction fanned out over an executor: one task per candidate, each writing its entry into the shared store.

The tasks return feature keys, never arrays: each worker writes its entry atomically under the store's per-key
lock (see :mod:`analyzer.store`), and the driver reads the entries back from the store, which must therefore be
on a path every node mounts (the Ray executor checks that before sending work).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from analyzer.contracts import Dataset
from analyzer.errors import DatasetError, Failure
from analyzer.executors import Executor, Task
from analyzer.extract import ExtractionResults, extract_features
from analyzer.store import FeatureEntry, FeatureStore


def extract_task(
    dataset: Dataset, spec: str, cache_dir: str | os.PathLike[str], **kwargs: Any
) -> str | Failure:
    """The task: extract ``spec``'s features of ``dataset`` into the store under ``cache_dir``; its key, or why
    it failed (as data: the message and fix cross processes). A DatasetError escapes: it stops every candidate."""
    try:
        return extract_features(dataset, spec, store=FeatureStore(cache_dir), **kwargs).key
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - this candidate's failure; the others still run
        return Failure.of(exc)


def extract_on(
    executor: Executor, dataset: Dataset, specs: Sequence[str], *, store: FeatureStore, **kwargs: Any
) -> ExtractionResults:
    """:func:`analyzer.extract.extract_many` through ``executor``: same results, candidates in parallel.

    ``kwargs`` as for :func:`analyzer.extract.extract_features`; a GPU is asked for per task where the
    executor has them. A DatasetError in any task stops everything (every candidate would fail alike).
    """
    device = str(kwargs.get("device") or "")
    tasks = [
        Task(
            stage="features",
            model=spec,
            fn=extract_task,
            args=(dataset, spec, str(store.cache_dir)),
            kwargs=kwargs,
            num_gpus=0.0 if device == "cpu" else 1.0,  # ignored where there are no GPUs
        )
        for spec in specs
    ]
    entries: dict[str, FeatureEntry] = {}
    failures: dict[str, str] = {}
    errors: dict[str, Failure] = {}
    for outcome in executor.run(tasks):
        spec = outcome.task.model
        if outcome.error_type == "DatasetError":
            raise DatasetError(f"{outcome.error} (on node {outcome.node})")
        value = outcome.value
        if not outcome.ok:  # the task itself could not run (e.g. its node died more often than Ray retries)
            value = Failure(str(outcome.error), None, internal=True)
        elif isinstance(value, str):
            entry = store.get(value)
            if entry is not None:
                entries[spec] = entry
                continue
            value = Failure(f"the entry {value} is not in {store.root} after extraction", None, internal=True)
        where = f" (on node {outcome.node})" if outcome.node not in ("local", "?") else ""
        errors[spec] = Failure(value.message + where, value.fix, value.internal)
        failures[spec] = errors[spec].line()
    return ExtractionResults(entries, failures, errors)  # type: ignore[arg-type]
