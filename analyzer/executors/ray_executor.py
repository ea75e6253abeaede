"""The Ray executor: each Task of a stage becomes one Ray task, on a local instance or on a cluster.

Where the work and the data live:
- Every task calls the same module-level function with the same arguments as the in-process executor, in a
  Ray worker that pins its thread pools (torch, BLAS, OpenMP) to the driver's counts, so a float sum is split
  the same way and a report is equal to the in-process one to the last bit.
- The feature store lives on a path every node mounts at the same place (``--cache-dir`` on NFS or a shared
  volume). Workers write its entries themselves, atomically and under the store's per-key file lock, so two
  drivers that rank the same candidates share the work, and an interrupted run resumes from the shards it saved.
  :meth:`RayExecutor.check_paths` proves each node sees the data and the cache before any work is sent.
- A worker process or node that dies is Ray's to handle: the task is retried elsewhere (``max_retries``).
  An exception raised by a unit's function is that unit's failure (never retried: it is deterministic), and
  names the unit's candidate and the node it ran on. A GPU out-of-memory error is such a failure.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from analyzer.executors.base import DoneCallback, Task, TaskOutcome
from analyzer.executors.local import describe_exception
from analyzer.executors.ray_cluster import ExecutorError, NodeCheck, NodeReport, init_ray, node_label

__all__ = ["ExecutorError", "RayExecutor", "cpus_per_unit", "driver_threads", "reserved_cpus", "run_unit"]

#: Seconds to wait for a cluster (connect, and the per-node check) before giving up with an ExecutorError.
DEFAULT_CONNECT_TIMEOUT = 60.0

#: What the stages' tasks import in a worker (about 4 s of CPU for torch, torchvision and timm alone). A fresh
#: worker imports them in its first task, in series with that task's work; warming them at connect overlaps it
#: with the driver's own start (opening the dataset, planning): benchmarks/scale_bench.py.
WARM_MODULES = (
    "torch",
    "torchvision",
    "timm",
    "analyzer.extract",
    "analyzer.sources",
    "analyzer.store",
    "metrics",
)


#: What the units of a :class:`SerialRunner` import (the spectrum stage's task and the weightwatcher client).
SERIAL_WARM_MODULES = ("analyzer.ranking", "analyzer.spectrum")


def driver_threads() -> dict[str, int]:
    """This process's thread counts: ``torch`` intra-op threads and each loaded thread-pool API (blas, openmp)."""
    import torch
    from threadpoolctl import threadpool_info

    counts: dict[str, int] = {"torch": torch.get_num_threads()}
    for pool in threadpool_info():
        api = str(pool.get("user_api"))
        counts[api] = max(counts.get(api, 0), int(pool.get("num_threads", 1)))
    return counts


def expected_threads() -> dict[str, int]:
    """What :func:`driver_threads` will say once torch is loaded, without loading it: torch starts with
    OMP_NUM_THREADS threads, else one per core it may use (exact on this machine; an executor that guessed wrong
    warms workers for the real counts too)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    count = os.environ.get("OMP_NUM_THREADS", "").strip()
    return {"torch": int(count) if count.isdigit() and int(count) > 0 else cores}


def _shape(threads: Mapping[str, int], node_cpus: Sequence[float]) -> tuple[float, dict[str, Any] | None]:
    """(CPUs each unit reserves, the units' runtime environment) for a driver with these thread counts."""
    unit_cpus = cpus_per_unit(threads, node_cpus)
    return unit_cpus, unit_runtime_env(threads, unit_cpus)


def most_threads(threads: Mapping[str, int]) -> int:
    """The largest of a unit's thread counts (at least 1): the cores it keeps busy."""
    return max([1, *threads.values()])


def cpus_per_unit(threads: Mapping[str, int], node_cpus: Sequence[float]) -> float:
    """CPUs each unit reserves: the threads it runs with (the driver's, pinned so results equal in-process ones to
    the bit), capped at the largest node so every unit can still be scheduled.

    Reserving fewer than the unit's threads lets Ray run one unit per CPU, each with the driver's thread count:
    on a 2-core node that is 4 BLAS/torch threads on 2 cores, and spin-waiting thread pools then made the same
    ranking 76-91 % slower than in process (benchmarks/scale_bench.py, idle 2-core machine).
    """
    wanted = most_threads(threads)
    largest = max([0.0, *node_cpus])
    return float(min(wanted, largest)) if largest >= 1 else 1.0


#: The runtime environment of units that run more threads than the CPUs they reserve (a node smaller than the
#: driver's thread count caps the reservation, see :func:`cpus_per_unit`): their idle OpenMP threads sleep instead
#: of spinning, or co-located units starve each other. Two one-CPU worker nodes on this 2-core machine took 40.4 s
#: for the notMNIST ranking (features 32.0 s) against 22.3 s (14.0 s) with it (benchmarks/scale_bench.py); on
#: uncapped units spinning is the faster choice and is kept. Scheduling only: no value changes.
OVERSUBSCRIBED_ENV = {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}}


def unit_runtime_env(threads: Mapping[str, int], unit_cpus: float) -> dict[str, Any] | None:
    """:data:`OVERSUBSCRIBED_ENV` when a unit pinned to the driver's ``threads`` reserves fewer CPUs than that and
    the driver did not choose an OpenMP wait policy itself (it is then passed on as it is); else None."""
    if "OMP_WAIT_POLICY" in os.environ or most_threads(threads) <= unit_cpus:
        return None
    return OVERSUBSCRIBED_ENV


def reserved_cpus(task: Task, unit_cpus: float) -> float:
    """CPUs a task asks Ray for: at least the threads it is pinned to (the driver's, ``unit_cpus``, see
    :func:`cpus_per_unit`, or ``Task.threads``). (Units with ``Task.own_threads`` run on a :class:`SerialRunner`.)"""
    return max(task.num_cpus, unit_cpus if task.threads is None else float(task.threads))


def unit_threads(task: Task, driver: Mapping[str, int]) -> dict[str, int]:
    """The thread counts a unit runs with: the driver's, or ``task.threads`` in every pool when it fixes them."""
    return dict(driver) if task.threads is None else {api: int(task.threads) for api in driver}


def warm_worker(modules: Sequence[str]) -> str:
    """Runs on a Ray worker at connect: import ``modules`` so the stages' first tasks find them loaded.

    Returns the modules that failed to import, comma-separated ("" when all loaded): a node without one of them
    fails its first real task with the usual message, so nothing is raised here.
    """
    import importlib

    failed = []
    for name in modules:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001 - reported by the task that needs it
            failed.append(name)
    return ",".join(failed)


def run_unit(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], threads: Mapping[str, int]
) -> tuple[str, Any, str | None, str | None, str, float]:
    """Runs on a Ray worker: ``fn(*args, **kwargs)`` with the driver's thread counts.

    Returns ``(status, value, error, error_type, node, seconds)``; an exception of the unit is returned, not
    raised, so Ray does not retry a deterministic failure and the driver learns the node it happened on.
    """
    import ray
    from threadpoolctl import threadpool_limits

    node = node_label(ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id())
    # Ray sets OMP_NUM_THREADS=1 in its workers; libraries loaded from here on read the driver's count instead.
    openmp = threads.get("openmp", threads.get("torch", 1))
    os.environ["OMP_NUM_THREADS"] = str(openmp)
    torch_threads = threads.get("torch", 1)
    if "torch" in sys.modules or torch_threads != 1 or openmp != 1:
        import torch

        torch.set_num_threads(torch_threads)
    # else a one-thread unit on a worker without torch (a bootstrap unit on a fresh worker) skips its 1.2 s import:
    # if the unit loads torch, torch starts with OMP_NUM_THREADS = 1 thread, as pinned.
    limits = {api: n for api, n in threads.items() if api != "torch"}
    t0 = time.perf_counter()
    try:
        with threadpool_limits(limits=limits or None):
            value = fn(*args, **dict(kwargs))
        return "ok", value, None, None, node, time.perf_counter() - t0
    except Exception as exc:  # noqa: BLE001 - the unit's failure, reported as data
        torch_module = sys.modules.get("torch")
        if type(exc).__name__ == "OutOfMemoryError" and torch_module and torch_module.cuda.is_available():
            torch_module.cuda.empty_cache()  # the next unit on this GPU starts from a clean allocator
        return "error", None, describe_exception(exc), type(exc).__name__, node, time.perf_counter() - t0


class SerialRunner:
    """A Ray actor, one per node: runs the units whose work is done in a helper process they keep
    (``Task.own_threads``: the weight spectrum's weightwatcher worker) one after another in its own long-lived
    process, so the helper starts once per node, not once per Ray worker that happens to get a unit.

    It reserves no CPU: its helper runs one thread beside the other units, as in the in-process run, where the
    spectrum's worker runs beside the bootstrap's threads. Reserving one would halve the bootstrap on a 2-CPU node;
    per-candidate tasks of one CPU each started a helper in every worker they landed on and queued behind the
    bootstrap's units (the offline zoo's ranking: +4 s, benchmarks/scale_bench.py).

    ``modules``: imported when it starts (:data:`SERIAL_WARM_MODULES`), as a warm-up: the executor starts its
    runners with its first stage, so the process and its imports are ready when the spectrum's units come.
    """

    def __init__(self, modules: Sequence[str] = ()) -> None:
        warm_worker(modules)

    def run(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        threads: Mapping[str, int],
    ) -> tuple[str, Any, str | None, str | None, str, float]:
        """:func:`run_unit` in this actor's process."""
        return run_unit(fn, args, kwargs, threads)


def _verified_keys(paths: Sequence[str], *, cache_first: bool) -> set[tuple[str, bool]]:
    """What a passed node check proves: ``(path, True)`` for a cache directory (the token was found there, which
    also proves it exists), ``(path, False)`` for a path that exists on every node."""
    keys = {(p, False) for p in paths}
    if cache_first and paths:
        keys.add((paths[0], True))
    return keys


def _task_name(task: Task) -> str:
    """The Ray task name of a unit (``ray list tasks``, the timeline): ``stage:model-file:label``."""
    name = ":".join(part for part in (task.stage, os.path.basename(task.model), task.label) if part)
    return name[:100] or "unit"


class RayExecutor:
    """Runs a stage's tasks as Ray tasks.

    ``address``: None starts a local Ray instance with every local CPU and GPU (or ``num_cpus``/``num_gpus``);
    ``"auto"`` joins the cluster this machine belongs to (``ray start`` ran here); ``"HOST:6379"`` or
    ``"ray://HOST:10001"`` joins that cluster. If Ray is already initialised in this process (a notebook, a test's
    cluster), that session is used and left running. ``connect_timeout``: seconds before a cluster that does not
    answer is an ExecutorError. ``max_retries``: re-runs of a task whose worker or node died.
    ``shared_paths``: paths every node must see (checked at connect; :meth:`check_paths` checks more later).
    ``warm``: start importing the stages' libraries in the workers at connect (:data:`WARM_MODULES`).
    """

    name = "ray"

    def __init__(
        self,
        address: str | None = None,
        *,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
        max_retries: int = 3,
        num_cpus: int | None = None,
        num_gpus: int | None = None,
        shared_paths: Sequence[str | os.PathLike[str]] = (),
        warm: bool = True,
    ) -> None:
        if address is not None and not str(address).strip():
            address = None
        self.address = address
        self.connect_timeout = float(connect_timeout)
        self.max_retries = int(max_retries)
        self.num_cpus = num_cpus
        self.num_gpus = num_gpus
        self.shared_paths = [str(p) for p in shared_paths]
        self.warm = warm
        self._warming: list[Any] = []
        self.nodes: list[NodeReport] = []
        self._owns_ray = False
        self._started = False
        self._check: NodeCheck | None = None
        self._check_first = False
        self._verified: set[tuple[str, bool]] = set()
        self._runners: list[Any] | None = None
        self._remote: Any = None
        self._threads: dict[str, int] = {}
        self._unit_cpus = 1.0
        self._runtime_env: dict[str, Any] | None = None

    # -- connection ---------------------------------------------------------------------------------------------
    def start(self, paths: Sequence[str | os.PathLike[str]] = ()) -> RayExecutor:
        """Join (or start) the cluster and send, without waiting, the per-node check of ``paths`` (the cache
        directory first) and ``shared_paths``, and the warm-ups; idempotent. The nodes then start their workers
        while the driver does its own start; :meth:`connect`, :meth:`check_paths` and :meth:`run` wait for the
        check before any work is sent. Raises ExecutorError (exit code 2) when the cluster cannot be reached."""
        if self._started:
            return self
        # init_ray imports Ray itself, after the settings Ray reads once when it loads (its auth mode)
        self._owns_ray = init_ray(
            self.address, timeout=self.connect_timeout, num_cpus=self.num_cpus, num_gpus=self.num_gpus
        )
        import ray

        self._started = True
        try:
            wanted = list(dict.fromkeys([*(str(p) for p in paths), *self.shared_paths]))
            self._check = NodeCheck(wanted)
            self._check_first = bool(paths)
            self._remote = ray.remote(run_unit)
            alive = [n for n in ray.nodes() if n.get("Alive")]
            node_cpus = [float(n.get("Resources", {}).get("CPU", 0)) for n in alive]
            warmed = None
            if self.warm and "torch" not in sys.modules:
                # The driver's thread counts need torch loaded (1.2 s): warm for the counts torch will choose
                # meanwhile, so the workers' imports overlap the driver's own.
                warmed = _shape(expected_threads(), node_cpus)
                self._warm_up(alive, *warmed)
            self._threads = driver_threads()
            self._unit_cpus, self._runtime_env = _shape(self._threads, node_cpus)
            if self.warm and warmed != (self._unit_cpus, self._runtime_env):
                self._warm_up(alive, self._unit_cpus, self._runtime_env)
        except BaseException:
            self.close()
            raise
        return self

    def connect(self) -> RayExecutor:
        """:meth:`start`, then wait for every node's check; idempotent. Raises ExecutorError (exit code 2)."""
        self.start()
        self._await_check()
        return self

    def _await_check(self) -> None:
        check, self._check = self._check, None
        if check is None:
            return
        try:
            self.nodes = check.result(self.connect_timeout)
        except BaseException:
            self.close()
            raise
        self._verified.update(_verified_keys(check.paths, cache_first=self._check_first))

    def _warm_up(
        self, nodes: Sequence[Mapping[str, Any]], unit_cpus: float, runtime_env: dict[str, Any] | None
    ) -> None:
        """Start importing :data:`WARM_MODULES` in as many workers per node as units fit on it, without waiting:
        each holds a unit's CPUs, so it lands on a worker the stages' tasks will get, and a task that comes first
        simply queues behind it (the imports were its own first cost anyway).

        Not more: a worker warmed for the bootstrap's one-thread units (one per CPU) sits idle through the
        extraction, and Ray's raylet stops idle workers it counts as surplus (both were gone after one 8 s task on
        a 2-CPU node), so it was gone before the bootstrap came, having slowed the extraction.
        """
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        remote = ray.remote(warm_worker)
        for node in nodes:
            cpus = float(node.get("Resources", {}).get("CPU", 0))
            for _ in range(int(cpus // unit_cpus)):  # a node no unit fits on gets none
                self._warming.append(
                    remote.options(
                        num_cpus=unit_cpus,
                        max_retries=0,
                        scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=True),
                        name="warm-up",
                        **({} if runtime_env is None else {"runtime_env": runtime_env}),
                    ).remote(WARM_MODULES)
                )

    def check_paths(self, paths: Sequence[str | os.PathLike[str]]) -> list[NodeReport]:
        """Every node sees every path (the first is the cache directory, proven to be the same directory).

        Raises ExecutorError naming the node and the path; call it before any work is sent. Paths already proven
        (by the check :meth:`start` sent) are not checked again.
        """
        self.start(paths)
        self._await_check()
        needed = _verified_keys([str(Path(p).expanduser().resolve()) for p in paths], cache_first=True)
        if not needed <= self._verified:
            self.nodes = NodeCheck(paths).result(self.connect_timeout)
            self._verified.update(needed)
        return self.nodes

    def resources(self) -> dict[str, float]:
        """The cluster's total resources (``CPU``, ``GPU``, ...)."""
        import ray

        self.connect()
        return {k: float(v) for k, v in ray.cluster_resources().items() if k in ("CPU", "GPU")}

    def close(self) -> None:
        """Shut Ray down if this executor started it (a session it joined is left running)."""
        check, self._check = self._check, None
        if check is not None:
            check.cancel()  # removes its token file from the cache directory
        runners, self._runners = self._runners or [], None
        if runners:
            import ray

            for runner in runners:  # its helper process exits with it (its stdin closes)
                ray.kill(runner, no_restart=True)
        if self._owns_ray:
            import ray

            ray.shutdown()
        self._owns_ray = False
        self._started = False
        self._verified = set()
        self._remote = None
        self._warming = []

    def __enter__(self) -> RayExecutor:
        return self.connect()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- running ------------------------------------------------------------------------------------------------
    def run(self, tasks: Sequence[Task], *, on_done: DoneCallback | None = None) -> list[TaskOutcome]:
        """Submit every task, report each as it finishes (``on_done``), return outcomes in task order.

        An interrupt (Ctrl-C) cancels what has not finished and re-raises; entries already written stay in the
        store, so the same command resumes.
        """
        if not tasks:
            return []
        import ray

        self.connect()
        use_gpus = float(ray.cluster_resources().get("GPU", 0.0)) > 0
        if self._runners is None and (self.warm or any(t.own_threads for t in tasks)):
            self._runners = self._serial_runners()
        turns = itertools.cycle(
            self._runners or []
        )  # round robin, in task order, over the nodes' serial runners
        refs = [
            self._submit_serial(t, next(turns)) if t.own_threads else self._submit(t, use_gpus) for t in tasks
        ]
        position = {ref: i for i, ref in enumerate(refs)}
        outcomes: list[TaskOutcome | None] = [None] * len(tasks)
        pending = list(refs)
        done = 0
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1)
                for ref in ready:
                    i = position[ref]
                    outcome = self._collect(tasks[i], ref)
                    outcomes[i] = outcome
                    done += 1
                    if on_done is not None:
                        on_done(outcome, done, len(tasks))
        except BaseException:
            for ref in pending:
                ray.cancel(ref, force=True)
            raise
        return [o for o in outcomes if o is not None]

    def _serial_runners(self) -> list[Any]:
        """One :class:`SerialRunner` per alive node that has CPUs, started now (killed by :meth:`close`)."""
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        actor = ray.remote(SerialRunner)
        alive = [n for n in ray.nodes() if n.get("Alive")]
        nodes = [n for n in alive if float(n.get("Resources", {}).get("CPU", 0)) > 0] or alive
        return [
            actor.options(
                num_cpus=0,
                max_restarts=self.max_retries,  # a node that dies: restarted elsewhere, its units retried
                max_task_retries=self.max_retries,
                scheduling_strategy=NodeAffinitySchedulingStrategy(node["NodeID"], soft=True),
                **self._env_option(),
            ).remote(SERIAL_WARM_MODULES)
            for node in nodes
        ]

    def _submit_serial(self, task: Task, runner: Any) -> Any:
        # Its work runs in its helper process, with the helper's own thread count: this process computes nothing,
        # so one thread of each pool (and no torch import: 1.2 s of a cold process, see run_unit).
        one_thread = {api: 1 for api in self._threads}
        return runner.run.options(name=_task_name(task)).remote(
            task.fn, task.args, dict(task.kwargs), one_thread
        )

    def _submit(self, task: Task, use_gpus: bool) -> Any:
        return self._remote.options(
            num_cpus=reserved_cpus(task, self._unit_cpus),
            num_gpus=task.num_gpus if use_gpus else 0,
            max_retries=self.max_retries,
            retry_exceptions=False,
            name=_task_name(task),
            **self._env_option(),
        ).remote(task.fn, task.args, dict(task.kwargs), unit_threads(task, self._threads))

    def _env_option(self) -> dict[str, Any]:
        """``runtime_env=`` for units and warm-ups when they need one (same env: warmed workers get reused)."""
        return {} if self._runtime_env is None else {"runtime_env": self._runtime_env}

    def _collect(self, task: Task, ref: Any) -> TaskOutcome:
        import ray

        try:
            status, value, error, error_type, node, seconds = ray.get(ref)
        except ray.exceptions.RayError as exc:
            # The worker or node died more often than max_retries, or the worker could not even unpickle the
            # task (a module missing there); ``cause`` is the exception behind Ray's wrapper when there is one.
            cause = getattr(exc, "cause", None)
            inner = cause if isinstance(cause, BaseException) else exc
            lines = str(inner).strip().splitlines()
            text = f"{type(inner).__name__}: {lines[-1]}" if lines else type(inner).__name__
            return TaskOutcome(
                task, error=f"Ray could not run it: {text}", error_type=type(inner).__name__, node="?"
            )
        if status != "ok":
            return TaskOutcome(task, error=error, error_type=error_type, node=node, seconds=seconds)
        return TaskOutcome(task, value=value, node=node, seconds=seconds)

    def describe(self) -> dict[str, Any]:
        """For the report's environment block and progress lines: address, node count, CPUs and GPUs."""
        res = self.resources() if self._started else {}
        return {
            "executor": self.name,
            "address": self.address or "local instance",
            "nodes": [n.label for n in self.nodes],
            "cpus": res.get("CPU", 0.0),
            "gpus": res.get("GPU", 0.0),
        }
