"""The Ranker: candidates x metrics -> RankingResult, as a short sequence of named stages.

plan -> features -> cost -> scores -> spectrum -> bootstrap -> aggregate -> validation

(the spectrum runs beside the bootstrap, in a thread, when no data-free metric is in the aggregate)

Each stage is a module of :mod:`analyzer.ranking.stages` with typed inputs and outputs; the heavy ones run their
units through an :class:`analyzer.executors.Executor` (in process by default), so the same code runs on a Ray
cluster and gives the same report.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.budget import DEFAULT_PARETO_AXIS, Budget, check_pareto_axis
from analyzer.contracts import Dataset
from analyzer.errors import every_candidate_failed
from analyzer.executors import Executor, InProcessExecutor, PlacementLog
from analyzer.ranking import stopping
from analyzer.ranking.background import BackgroundStage
from analyzer.ranking.plan import RankingPlan
from analyzer.ranking.progress import Progress, ProgressCallback
from analyzer.ranking.stages.aggregate import AggregateInput, BootstrapRun, dataset_summary, run_aggregate
from analyzer.ranking.stages.bootstrap import BootstrapInput, run_bootstrap
from analyzer.ranking.stages.cost import CostChoice, CostInput, run_cost
from analyzer.ranking.stages.features import FeaturesInput, run_features
from analyzer.ranking.stages.scores import ScoresInput, run_scores
from analyzer.ranking.stages.spectrum import SpectrumInput, SpectrumOutput, run_spectrum
from analyzer.ranking.stages.validation import GroundTruth, read_truth, run_validation
from analyzer.result import RankingResult

if TYPE_CHECKING:
    from analyzer.store import FeatureStore


@contextlib.contextmanager
def _timed(seconds: dict[str, float], key: str) -> Iterator[None]:
    """Record the wall time of the ``with`` block as ``seconds[key]`` (the report's ``timings``)."""
    t0 = time.perf_counter()
    yield
    seconds[key] = time.perf_counter() - t0


class Ranker:
    """Rank candidate backbones for one dataset (the public Python API; the ``rank`` command uses it).

    >>> ranker = Ranker("sklearn:digits", cache_dir="data_cache", max_per_class=30)   # doctest: +SKIP
    >>> result = ranker.run(["timm:resnet18", "torchscript:model.pt"], metrics=["logme", "knn"])  # doctest: +SKIP
    >>> reports.save(result, "out/")                                                  # doctest: +SKIP

    ``dataset``: a dataset spec (opened with ``analyzer.datasets.open_dataset`` and ``max_per_class``, ``seed``,
    ``split``) or an opened Dataset. Features are extracted once into ``<cache>/features`` (the feature store)
    and scores cached under ``<cache>/scores``; spectra under ``<cache>/spectrum``. ``executor``: how the
    stages' units run: None or ``"local"`` in this process, one after the other; ``"ray"`` one Ray task each,
    on a local Ray instance or, with ``ray_address`` (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``), on
    that cluster; or an :class:`~analyzer.executors.Executor` object. The report does not depend on it.
    """

    def __init__(
        self,
        dataset: str | os.PathLike[str] | Dataset,
        *,
        cache_dir: str | os.PathLike[str] | None = None,
        device: str | None = None,
        batch_size: int = 64,
        max_per_class: int | None = None,
        seed: int = 0,
        split: str | None = None,
        num_workers: int | None = None,
        progress: bool = True,
        spectrum_timeout: float = 600.0,
        on_progress: ProgressCallback | None = None,
        executor: Executor | str | None = None,
        ray_address: str | None = None,
    ) -> None:
        from analyzer.paths import CacheLayout, resolve_cache_dir

        self.cache_dir: Path = resolve_cache_dir(cache_dir)
        self.device = device
        self.batch_size = batch_size
        self.seed = seed
        self.num_workers = num_workers
        self.progress = progress
        self.spectrum_timeout = spectrum_timeout
        self.on_progress = on_progress
        # an executor named here is the Ranker's own: each run closes it (a Ray instance it started goes with it)
        self._owns_executor = isinstance(executor, str) or ray_address is not None
        if self._owns_executor:
            from analyzer.executors import get_executor

            options = {} if ray_address is None else {"address": ray_address}
            executor = get_executor(str(executor or "ray"), **options)
        self.executor: Executor = (
            InProcessExecutor() if executor is None or isinstance(executor, str) else executor
        )
        self._paths_checked = False
        if isinstance(dataset, str | os.PathLike):
            from analyzer.datasets import open_dataset

            dataset = open_dataset(
                str(dataset),
                max_per_class=max_per_class,
                seed=seed,
                split=split,
                check_cache=CacheLayout(self.cache_dir).checks,
            )
        self.dataset: Dataset = dataset

    def _check_executor_paths(self) -> None:
        """Once per Ranker: an executor that runs elsewhere (Ray) checks that every node sees the cache and the
        data before any work is sent (an ExecutorError naming the node and the path otherwise)."""
        if self._paths_checked:
            return
        data = self.dataset.spec
        paths = [self.cache_dir] + ([Path(str(data))] if data and Path(str(data)).exists() else [])
        self.executor.check_paths(paths)
        self._paths_checked = (
            not self._owns_executor
        )  # an executor the run closes is checked again when reopened

    def _store(self) -> FeatureStore:
        from analyzer.store import FeatureStore

        return FeatureStore(self.cache_dir)

    def run(
        self, candidates: Sequence[str], metrics: Sequence[str] | None = None, **options: Any
    ) -> RankingResult:
        """:meth:`rank` (its arguments and result); an executor the Ranker opened itself
        (``Ranker(executor="ray")``) is closed when it returns or fails."""
        try:
            return self.rank(candidates, metrics, **options)
        finally:
            if self._owns_executor:
                self.executor.close()

    def rank(
        self,
        candidates: Sequence[str],
        metrics: Sequence[str] | None = None,
        *,
        ground_truth: GroundTruth | None = None,
        n_bootstrap: int = 200,
        bootstrap_fraction: float = 0.8,
        bootstrap_early_stop: bool = True,
        aggregate: Sequence[str] | None = None,
        metric_params: Mapping[str, Mapping[str, Any]] | None = None,
        name: str | None = None,
        config: Mapping[str, Any] | None = None,
        budget: Budget | None = None,
        pareto_axis: str = DEFAULT_PARETO_AXIS,
    ) -> RankingResult:
        """Extract, score, rank and bootstrap ``candidates`` (model specs); returns the RankingResult.

        ``metrics``: None = :data:`DEFAULT_METRICS` plus the data-free metrics. ``bootstrap_early_stop``: score the
        resamples in rounds and stop once P(best) is settled (:mod:`analyzer.ranking.stopping`; False scores all
        ``n_bootstrap``). ``aggregate``: the metrics averaged into the aggregate rank (None = the label-based ones requested). ``ground_truth``: {model:
        accuracy} or a truth CSV path; adds ``validation``. ``budget``: limits on the measured cost (the cost
        stage measures every candidate on this run's device, :mod:`analyzer.cost`); the recommendation is the best
        candidate within it; ``pareto_axis``: the cost the Pareto front is drawn against (:mod:`analyzer.budget`). A candidate that fails to load or extract is listed
        in ``failed`` and the rest are ranked; a metric that cannot apply to a candidate is listed in ``skipped``.
        """
        t_start = time.perf_counter()
        check_pareto_axis(pareto_axis)
        ds = self.dataset
        plan = RankingPlan.build(
            candidates,
            metrics,
            aggregate=aggregate,
            metric_params=metric_params,
            seed=self.seed,
            n_bootstrap=n_bootstrap,
            bootstrap_fraction=bootstrap_fraction,
        )
        truth = read_truth(ground_truth, dataset_name=str(ds.name or ""))
        emit = Progress(log=self.progress, callback=self.on_progress)
        executor = PlacementLog(self.executor)  # which node ran which unit, for the report
        seconds: dict[str, float] = {}
        self._check_executor_paths()

        with _timed(seconds, "features_seconds"):
            features = run_features(
                FeaturesInput(
                    plan.specs,
                    ds,
                    self.cache_dir,
                    self.device,
                    self.batch_size,
                    self.num_workers,
                    self.progress,
                ),
                executor,
                emit,
            )
        if not features.extracted:
            raise every_candidate_failed(features.failures)
        ok = features.extracted
        # Hold every entry until the run ends: `cache rm` leaves an entry alone while a reader's lease lives.
        leases = _hold_entries(self.cache_dir, ok)
        with _timed(seconds, "cost_seconds"):
            cost = run_cost(CostInput(self.cache_dir, ok, self.device, self.batch_size), self.executor, emit)

        with _timed(seconds, "scoring_seconds"):
            scores = run_scores(
                ScoresInput(self.cache_dir, ok, plan.label_metrics, plan.params), executor, emit
            )
        spectrum_input = SpectrumInput(self.cache_dir, ok, plan.data_free_metrics, self.spectrum_timeout)
        background: BackgroundStage[SpectrumOutput] | None = None
        if not plan.data_free_metrics or set(plan.data_free_metrics) & set(plan.aggregate):
            with _timed(seconds, "spectrum_seconds"):
                spectrum = run_spectrum(spectrum_input, executor, emit)
        else:  # the aggregate does not need it: the spectrum runs beside the bootstrap, not before it
            seconds["spectrum_seconds"] = 0.0  # the report's order of stages; the stage's own time set below
            background = BackgroundStage(
                lambda sink: run_spectrum(spectrum_input, executor, sink), emit, "weight-spectrum"
            )
            spectrum = SpectrumOutput()
        all_scores = {**scores.scores, **spectrum.scores}
        with _timed(seconds, "bootstrap_seconds"):
            boot = run_bootstrap(
                BootstrapInput(
                    self.cache_dir,
                    ok,
                    metrics=plan.aggregate,
                    params=plan.params,
                    scores=all_scores,
                    n=plan.n_bootstrap,
                    fraction=plan.bootstrap_fraction,
                    seed=plan.seed,
                    early_stop=bootstrap_early_stop,
                ),
                executor,
                emit,
            )
        if background is not None:
            spectrum = background.result()
            seconds["spectrum_seconds"] = background.seconds
            all_scores = {**scores.scores, **spectrum.scores}

        result = run_aggregate(
            AggregateInput(
                name=name or str(ds.name or "run"),
                dataset=dataset_summary(ds),
                config=dict(config or plan.config(data=str(ds.spec), batch_size=self.batch_size)),
                metric_entries=plan.metric_entries(),
                candidates=ok,
                scores=all_scores,
                skipped=(*scores.skipped, *spectrum.skipped, *cost.skipped),
                failed=(*features.failed, *scores.failed),
                boot_tables=boot.tables,
                bootstrap=BootstrapRun(
                    n_resamples=boot.n_used or plan.n_bootstrap,
                    seed=plan.seed,
                    fraction=plan.bootstrap_fraction,
                    n_requested=plan.n_bootstrap if bootstrap_early_stop else None,
                    stopping=stopping.RULE if bootstrap_early_stop else None,
                ),
                spectra=spectrum.spectra,
                timings={"total_seconds": time.perf_counter() - t_start, **seconds},
                costs=CostChoice(cost.costs, budget or Budget(), pareto_axis),
            )
        )
        result = dataclasses.replace(
            result, environment={**result.environment, "executor": executor.summary()}
        )
        del leases
        return run_validation(result, truth)


def _hold_entries(cache_dir: str | os.PathLike[str], extracted: Sequence[Any]) -> list[Any]:
    """The store entries of ``extracted`` candidates, each holding its reader lease while referenced."""
    from analyzer.store import FeatureStore

    store = FeatureStore(cache_dir)
    return [store.get(e.feature_key) for e in extracted]
