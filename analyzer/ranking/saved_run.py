"""One ranking run from a request to its reports on disk: what ``rank`` and the dashboard's form both call.

:func:`run_and_save` checks what the request names, in the order that costs least: the cache directory, the
``out`` directory, the executor (a Ray one joins its cluster and sends its node check without waiting), the model
prefixes, the device, the dataset (at least two classes) and the ground-truth file (covering the candidates); then
it ranks and writes the four reports. A mistake raises an AnalyzerError (exit code 2) before any extraction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer.ranking.plan import RankingPlan
from analyzer.ranking.progress import ProgressCallback
from analyzer.ranking.ranker import Ranker
from analyzer.request import RankRequest

if TYPE_CHECKING:
    from analyzer.contracts import Dataset
    from analyzer.result import RankingResult


@dataclass(frozen=True)
class SavedRun:
    """A finished ranking: the result and the directory its reports were written to."""

    result: RankingResult
    out: Path


def run_and_save(
    request: RankRequest,
    *,
    on_progress: ProgressCallback | None = None,
    on_dataset: Callable[[Dataset], None] | None = None,
) -> SavedRun:
    """Rank as ``request`` asks and save the reports in ``request.out`` (default: a new
    ``<cache>/runs/<timestamp>-<name>/``); the report's ``config`` records the whole request.

    ``on_progress``: called with each :class:`~analyzer.ranking.ProgressEvent`; ``on_dataset``: called with the
    opened dataset before the ranking starts (``rank`` prints its size and warnings).
    """
    from analyzer.executors import open_executor
    from analyzer.inputs import check_output_dir
    from analyzer.outputs import check_overwrite
    from analyzer.paths import CacheLayout, resolve_cache_dir
    from analyzer.reports import WRITERS, save

    cache_dir = resolve_cache_dir(request.cache_dir)
    if request.out:
        check_output_dir(request.out, flag="--out")
        check_overwrite([Path(request.out) / name for name in WRITERS], flag="--out", force=request.force)
    # A Ray executor joins its cluster and sends its node check first, without waiting: the nodes start workers and
    # import the stages' libraries while this process imports its own and checks the other inputs (3 s of a
    # 30 s ranking on a 2-core machine, benchmarks/scale_bench.py). No task is sent before the check has passed.
    executor = open_executor(request.executor, [cache_dir, request.data], wait=False)
    try:
        dataset = _open_dataset(request, cache_dir)
        if on_dataset is not None:
            on_dataset(dataset)  # its warnings are shown even when it cannot be ranked
        truth = _check_inputs(request, dataset)
        name = request.name or str(dataset.name or Path(str(request.data)).name or "run")
        resolved = request.replace(cache_dir=str(cache_dir), name=name)
        ranker = Ranker.for_request(resolved, dataset, executor=executor, on_progress=on_progress)
        recorded = {**request.to_dict(), "cache_dir": str(cache_dir)}
        result = ranker.run(RankingPlan.of(resolved), ground_truth=truth, config=recorded)
    finally:
        executor.close()  # before writing the reports: a local Ray instance is not needed for that
    out = Path(request.out) if request.out else CacheLayout(cache_dir).new_run_dir(name)
    return SavedRun(save(result, out, cache_dir=cache_dir), out)


def _open_dataset(request: RankRequest, cache_dir: Path) -> Dataset:
    """The model prefixes and the device checked (each fault an AnalyzerError with its fix), the dataset opened."""
    from analyzer.datasets import open_dataset
    from analyzer.device import resolve_device
    from analyzer.paths import CacheLayout
    from analyzer.sources import parse_spec

    for spec in request.models:
        parse_spec(spec)
    resolve_device(request.device)
    dataset = open_dataset(
        str(request.data),
        max_per_class=request.max_per_class,
        seed=request.seed,
        split=request.split,
        skip_bad=request.skip_bad,
        image_column=request.image_column,
        label_column=request.label_column,
        check_cache=CacheLayout(cache_dir).checks,
    )
    return dataset


def _check_inputs(request: RankRequest, dataset: Dataset) -> dict[str, float] | None:
    """The dataset has two classes at least; the ground truth (when given) is read and covers the candidates."""
    from analyzer.datasets import require_classes
    from analyzer.truth import check_truth_covers, load_ground_truth

    require_classes(dataset, purpose="ranking")
    truth = None
    if request.ground_truth:
        truth = load_ground_truth(request.ground_truth, dataset=str(dataset.name or ""))
        check_truth_covers(truth, list(request.models), request.ground_truth)
    return truth
