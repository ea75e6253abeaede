"""Extraction fanned out over an executor for ``extract`` and ``probe``: the ranking's features stage, read back.

The fan-out itself (one task per candidate; on a cluster, for a large target, one task per shard first) is the
ranking's :func:`analyzer.ranking.stages.features.run_features`; this module only turns its output into the
:class:`analyzer.extract.ExtractionResults` those commands print, and keeps their rule that a fault of the
dataset stops everything. The tasks return feature keys, never arrays: each worker writes its entry atomically
under the store's per-key lock (see :mod:`analyzer.store`), and the driver reads the entries back from the store,
which must therefore be on a path every node mounts (the Ray executor checks that before sending work).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from analyzer.contracts import Dataset
from analyzer.errors import DatasetError, Failure
from analyzer.executors import Executor
from analyzer.extract import DEFAULT_SHARD_SIZE, ExtractionResults
from analyzer.ranking.progress import Progress, ProgressCallback, ProgressEvent
from analyzer.ranking.stages.features import FeaturesInput, run_features
from analyzer.store import FeatureEntry, FeatureStore


def extract_on(
    executor: Executor,
    dataset: Dataset,
    specs: Sequence[str],
    *,
    store: FeatureStore,
    device: str | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    progress: bool = True,
    shard_size: int = DEFAULT_SHARD_SIZE,
    command: str = "extract",
    on_progress: ProgressCallback | None = None,
    **options: Any,
) -> ExtractionResults:
    """:func:`analyzer.extract.extract_many` through ``executor``: the same entries, candidates (and the shards of
    a large target, see :func:`analyzer.ranking.stages.features.shard_plan`) in parallel.

    ``device`` ... ``shard_size`` and ``options`` (``feature_layer``, ``image_size``, ``mean``, ``std``, ``amp``)
    as for :func:`analyzer.extract.extract_features`; a GPU is asked for per task where the executor has them.
    ``progress``: also print a line per finished task (``[<command>] features: ...``, with the node on a
    cluster); ``on_progress`` gets every :class:`ProgressEvent`. Returns entries by spec; a failed candidate's
    line and :class:`Failure` name the node it failed on. A DatasetError in any task stops everything (every
    candidate would fail alike): raised here, with the node.
    """
    failed_on: dict[str, str] = {}  # spec -> the node its failure came from
    log = Progress(log=progress, callback=on_progress)

    def emit(event: ProgressEvent) -> None:
        if event.error is not None:
            failed_on.setdefault(event.model, event.node)
        log(event)

    inp = FeaturesInput(
        tuple(specs),
        dataset,
        store.cache_dir,
        device,
        batch_size,
        num_workers,
        progress,
        shard_size,
        options=dict(options),
        command=command,
    )
    out = run_features(inp, executor, emit)
    entries: dict[str, FeatureEntry] = {}
    errors: dict[str, Failure] = {}
    for spec, failure in out.failures.items():
        node = failed_on.get(spec, "?")
        where = f" (on node {node})" if node not in ("local", "?") else ""
        if failure.dataset:
            raise DatasetError(failure.message + where, failure.fix)
        errors[spec] = Failure(failure.message + where, failure.fix, failure.internal)
    for extracted in out.extracted:
        entry = store.get(extracted.feature_key)
        if entry is None:  # a worker wrote it elsewhere: the store is not the path every node mounts
            message = f"the entry {extracted.feature_key} is not in {store.root} after extraction"
            errors[extracted.model] = Failure(message, None, internal=True)
        else:
            entries[extracted.model] = entry
    entries = {spec: entries[spec] for spec in specs if spec in entries}
    errors = {spec: errors[spec] for spec in specs if spec in errors}
    failures = {spec: failure.line() for spec, failure in errors.items()}
    return ExtractionResults(entries, failures, errors)  # type: ignore[arg-type]
