"""The Ranker: a :class:`~analyzer.ranking.plan.RankingPlan` -> RankingResult, as a short sequence of named stages.

request -> plan -> features -> cost -> scores -> spectrum -> bootstrap -> aggregate -> validation

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.budget import Budget
from analyzer.contracts import Dataset
from analyzer.errors import every_candidate_failed
from analyzer.executors import Executor, InProcessExecutor, PlacementLog
from analyzer.ranking import stopping
from analyzer.ranking.background import BackgroundStage
from analyzer.ranking.plan import RankingPlan
from analyzer.ranking.progress import Progress, ProgressCallback
from analyzer.ranking.stages.aggregate import AggregateInput, BootstrapRun, dataset_summary, run_aggregate
from analyzer.ranking.stages.bootstrap import BootstrapInput, BootstrapOutput, run_bootstrap
from analyzer.ranking.stages.cost import CostChoice, CostInput, CostOutput, run_cost
from analyzer.ranking.stages.features import Extracted, FeaturesInput, FeaturesOutput, run_features
from analyzer.ranking.stages.scores import ScoresInput, ScoresOutput, run_scores
from analyzer.ranking.stages.spectrum import SpectrumInput, SpectrumOutput, run_spectrum
from analyzer.ranking.stages.validation import GroundTruth, read_truth, run_validation
from analyzer.request import RankRequest
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
    """Rank candidate backbones for one dataset (the public Python API; ``rank`` and the dashboard use it through
    :func:`analyzer.ranking.run_and_save`).

    >>> ranker = Ranker("sklearn:digits", cache_dir="data_cache", max_per_class=30)   # doctest: +SKIP
    >>> result = ranker.run(["timm:resnet18", "torchscript:model.pt"], metrics=["logme", "knn"])  # doctest: +SKIP
    >>> reports.save(result, "out/")                                                  # doctest: +SKIP

    ``dataset``: a dataset spec (opened with ``analyzer.datasets.open_dataset`` and ``max_per_class``, ``seed``,
    ``split``) or an opened Dataset. Features are extracted once into ``<cache>/features`` (the feature store)
    and scores cached under ``<cache>/scores``; spectra under ``<cache>/spectrum``. ``executor``: how the
    stages' units run: None or ``"local"`` in this process, one after the other; ``"ray"`` one Ray task each,
    on a local Ray instance or, with ``ray_address`` (``"auto"``, ``"HOST:6379"``, ``"ray://HOST:10001"``), on
    that cluster; or an :class:`~analyzer.executors.Executor` object. The report does not depend on it.
    ``device``, ``batch_size``, ``seed``, ``num_workers``, ``spectrum_timeout``: the settings of the requests
    :meth:`run` builds from specs (a :class:`~analyzer.request.RankRequest` carries its own).
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
        # What a request built by run(specs) asks besides the specs (the dataset's own options were used to open it).
        self.settings: dict[str, Any] = {
            "cache_dir": str(self.cache_dir),
            "device": device,
            "batch_size": batch_size,
            "max_per_class": max_per_class,
            "split": split,
            "seed": seed,
            "num_workers": num_workers,
            "spectrum_timeout": spectrum_timeout,
        }
        self.progress = progress
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

    @classmethod
    def for_request(
        cls,
        request: RankRequest,
        dataset: Dataset,
        *,
        executor: Executor | None = None,
        on_progress: ProgressCallback | None = None,
        progress: bool = False,
    ) -> Ranker:
        """The Ranker that runs ``request`` on its opened ``dataset`` (:func:`analyzer.ranking.run_and_save`)."""
        settings = {
            k: getattr(request, k)
            for k in ("device", "batch_size", "seed", "num_workers", "spectrum_timeout")
        }
        return cls(
            dataset,
            cache_dir=request.cache_dir,
            max_per_class=request.max_per_class,
            split=request.split,
            progress=progress,
            on_progress=on_progress,
            executor=executor,
            **settings,
        )

    def plan(
        self,
        candidates: RankingPlan | RankRequest | Sequence[str],
        metrics: Sequence[str] | None = None,
        **options: Any,
    ) -> RankingPlan:
        """The plan of a request; from specs, the request is built here with this Ranker's settings, ``metrics``
        and ``options`` (any :class:`~analyzer.request.RankRequest` field: ``n_bootstrap``, ``aggregate``,
        ``metric_params``, ``name``, ``max_params``, ...; ``budget``: a :class:`~analyzer.budget.Budget` for the
        ``max_*`` fields), and checked: a mistake raises RequestError before any work."""
        if isinstance(candidates, RankingPlan | RankRequest):
            if metrics is not None or options:
                raise TypeError(
                    "metrics and options belong in the RankRequest when a request or plan is given"
                )
            return candidates if isinstance(candidates, RankingPlan) else RankingPlan.of(candidates)
        budget = options.pop("budget", None)  # a Budget: shorthand for its max_* fields
        if isinstance(budget, Budget):
            options = {**{k: v for k, v in budget.to_dict().items() if v is not None}, **options}
        request = RankRequest(
            data=str(self.dataset.spec),
            models=tuple(candidates),
            metrics=None if metrics is None else tuple(metrics),
            **{**self.settings, **options},
        )
        return RankingPlan.of(request)

    def run(
        self,
        plan: RankingPlan | RankRequest | Sequence[str],
        metrics: Sequence[str] | None = None,
        **options: Any,
    ) -> RankingResult:
        """:meth:`rank` (its arguments and result); an executor the Ranker opened itself
        (``Ranker(executor="ray")``) is closed when it returns or fails."""
        try:
            return self.rank(plan, metrics, **options)
        finally:
            if self._owns_executor:
                self.executor.close()

    def rank(
        self,
        plan: RankingPlan | RankRequest | Sequence[str],
        metrics: Sequence[str] | None = None,
        *,
        ground_truth: GroundTruth | None = None,
        config: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> RankingResult:
        """Extract, score, rank and bootstrap the candidates of ``plan``; returns the RankingResult.

        ``plan``: a RankingPlan, a RankRequest, or candidate specs (with ``metrics`` and request fields as
        keywords, see :meth:`plan`: None = :data:`DEFAULT_METRICS` plus the data-free metrics; ``aggregate``: None
        = the label-based ones requested but TMI and PED; ``bootstrap_early_stop``: stop once P(best) is settled,
        :mod:`analyzer.ranking.stopping`). ``ground_truth``: {model: accuracy} or a truth CSV path (default: the
        request's); adds ``validation``. ``config``: the report's ``config`` block (default: the plan's summary).
        A candidate that fails to load or extract is listed in ``failed`` and the rest are ranked; a metric that
        cannot apply to a candidate is listed in ``skipped``.
        """
        t_start = time.perf_counter()
        plan = self.plan(plan, metrics, **options)
        ds = self.dataset
        truth = read_truth(
            ground_truth if ground_truth is not None else plan.request.ground_truth,
            dataset_name=str(ds.name or ""),
        )
        # the executor wrapped to record which node ran which unit, for the report
        run = _Run(plan, Progress(log=self.progress, callback=self.on_progress), PlacementLog(self.executor))
        self._check_executor_paths()
        features = self._features(run)
        # Hold every entry until the run ends: `cache rm` leaves an entry alone while a reader's lease lives.
        leases = _hold_entries(self.cache_dir, features.extracted)
        cost = self._cost(run, features.extracted)
        scores = self._scores(run, features.extracted)
        spectrum = self._start_spectrum(run, features.extracted)
        boot = self._bootstrap(run, features.extracted, {**scores.scores, **spectrum.scores()})
        data_free = spectrum.finish(run)
        early_stop = plan.request.bootstrap_early_stop
        result = run_aggregate(
            AggregateInput(
                name=plan.request.name or str(ds.name or "run"),
                dataset=dataset_summary(ds),
                config=dict(config or plan.config(data=str(ds.spec))),
                metric_entries=plan.metric_entries(),
                candidates=features.extracted,
                scores={**scores.scores, **data_free.scores},
                skipped=(*scores.skipped, *data_free.skipped, *cost.skipped),
                failed=(*features.failed, *scores.failed),
                boot_tables=boot.tables,
                bootstrap=BootstrapRun(
                    n_resamples=boot.n_used or plan.n_bootstrap,
                    seed=plan.seed,
                    fraction=plan.bootstrap_fraction,
                    n_requested=plan.n_bootstrap if early_stop else None,
                    # with one round or less requested the rule never runs, so the report does not state it
                    stopping=stopping.RULE if early_stop and plan.n_bootstrap > stopping.ROUND else None,
                ),
                spectra=data_free.spectra,
                timings={"total_seconds": time.perf_counter() - t_start, **run.seconds},
                costs=CostChoice(cost.costs, plan.request.budget(), plan.request.pareto_axis),
            )
        )
        result = dataclasses.replace(
            result, environment={**result.environment, "executor": run.executor.summary()}
        )
        del leases
        return run_validation(result, truth)

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

    def _features(self, run: _Run) -> FeaturesOutput:
        """Stage 1: every candidate's features, from the store or extracted (fails when none could be had)."""
        req = run.plan.request
        with _timed(run.seconds, "features_seconds"):
            inp = FeaturesInput(
                run.plan.specs,
                self.dataset,
                self.cache_dir,
                req.device,
                req.batch_size,
                req.num_workers,
                self.progress,
            )
            features = run_features(inp, run.executor, run.emit)
        if not features.extracted:
            raise every_candidate_failed(features.failures)
        return features

    def _cost(self, run: _Run, extracted: tuple[Extracted, ...]) -> CostOutput:
        """Stage 2: every candidate's measured cost (parameters, FLOPs, latency, memory) on the run's device."""
        req = run.plan.request
        with _timed(run.seconds, "cost_seconds"):
            return run_cost(
                CostInput(self.cache_dir, extracted, req.device, req.batch_size), run.executor, run.emit
            )

    def _scores(self, run: _Run, extracted: tuple[Extracted, ...]) -> ScoresOutput:
        """Stage 3: the label-based metrics of every extracted candidate."""
        with _timed(run.seconds, "scoring_seconds"):
            inp = ScoresInput(self.cache_dir, extracted, run.plan.label_metrics, run.plan.params)
            return run_scores(inp, run.executor, run.emit)

    def _start_spectrum(self, run: _Run, extracted: tuple[Extracted, ...]) -> _Spectrum:
        """Stage 4: the data-free metrics from the weight spectrum: now when the aggregate (and so the bootstrap)
        needs them, else started in a thread beside the bootstrap (:meth:`_Spectrum.finish` collects it)."""
        inp = SpectrumInput(
            self.cache_dir, extracted, run.plan.data_free_metrics, run.plan.request.spectrum_timeout
        )
        if run.plan.spectrum_first:
            with _timed(run.seconds, "spectrum_seconds"):
                return _Spectrum(done=run_spectrum(inp, run.executor, run.emit))
        run.seconds["spectrum_seconds"] = (
            0.0  # the report's order of stages; the stage's own time set by finish()
        )
        executor = run.executor
        return _Spectrum(
            background=BackgroundStage(
                lambda sink: run_spectrum(inp, executor, sink), run.emit, "weight-spectrum"
            )
        )

    def _bootstrap(
        self, run: _Run, extracted: tuple[Extracted, ...], scores: Mapping[str, Any]
    ) -> BootstrapOutput:
        """Stage 5: the aggregate metrics re-scored on resamples of the target (P(best), rank intervals)."""
        plan = run.plan
        with _timed(run.seconds, "bootstrap_seconds"):
            inp = BootstrapInput(
                self.cache_dir,
                extracted,
                metrics=plan.aggregate,
                params=plan.params,
                scores=dict(scores),
                n=plan.n_bootstrap,
                fraction=plan.bootstrap_fraction,
                seed=plan.seed,
                early_stop=plan.request.bootstrap_early_stop,
            )
            return run_bootstrap(inp, run.executor, run.emit)


@dataclass
class _Run:
    """One run's plan, its progress sink, its executor (recording where each unit ran) and the stages' wall times
    (the report's ``timings``)."""

    plan: RankingPlan
    emit: Progress
    executor: PlacementLog
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass
class _Spectrum:
    """The spectrum stage's output, done or running beside the bootstrap (``background``)."""

    done: SpectrumOutput | None = None
    background: BackgroundStage[SpectrumOutput] | None = None

    def scores(self) -> dict[str, Any]:
        """The data-free scores known now (none while it runs in the background)."""
        return dict(self.done.scores) if self.done is not None else {}

    def finish(self, run: _Run) -> SpectrumOutput:
        """The output, waiting for the background thread (once) and recording its own wall time."""
        if self.done is None:
            assert self.background is not None
            self.done = self.background.result()
            run.seconds["spectrum_seconds"] = self.background.seconds
        return self.done


def _hold_entries(cache_dir: str | os.PathLike[str], extracted: Sequence[Any]) -> list[Any]:
    """The store entries of ``extracted`` candidates, each holding its reader lease while referenced."""
    from analyzer.store import FeatureStore

    store = FeatureStore(cache_dir)
    return [store.get(e.feature_key) for e in extracted]
