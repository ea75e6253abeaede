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
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from analyzer.executors.base import DoneCallback, Task, TaskOutcome
from analyzer.executors.ray_cluster import ExecutorError, NodeCheck, NodeReport, proven_by, resolved
from analyzer.executors.ray_connect import init_ray
from analyzer.executors.ray_units import (
    SERIAL_WARM_MODULES,
    WARM_MODULES,
    SerialRunner,
    driver_threads,
    expected_threads,
    reserved_cpus,
    run_unit,
    shared_objects,
    unit_shape,
    unit_threads,
    warm_worker,
)

__all__ = ["ExecutorError", "NodeReport", "RayExecutor"]

#: Seconds to wait for a cluster (connect, and the per-node check) before giving up with an ExecutorError.
DEFAULT_CONNECT_TIMEOUT = 60.0
#: While units run: seconds without any finishing after which the executor checks that the cluster answers and has
#: a node with CPUs left (else an ExecutorError, instead of waiting forever).
WATCH_SECONDS = 30.0


def _env_option(runtime_env: dict[str, Any] | None) -> dict[str, Any]:
    """``runtime_env=`` for units and warm-ups when they need one (the same env: warmed workers get reused)."""
    return {} if runtime_env is None else {"runtime_env": runtime_env}


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
    ``quiet``: no line on stderr per node checked at connect.

    Thread safety (the :class:`~analyzer.executors.base.Executor` contract): :meth:`start`, :meth:`connect`,
    :meth:`check_paths` and :meth:`run` may be called from several threads at once; the connection, the node check
    and the per-node runners are made once, under a lock.
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
        quiet: bool = False,
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
        self.quiet = quiet
        self._warming: list[Any] = []
        self.nodes: list[NodeReport] = []
        self._owns_ray = False
        self._started = False
        self._check: NodeCheck | None = None
        self._verified: set[tuple[str, bool]] = set()
        self._runners: list[Any] | None = None
        self._remote: Any = None
        self._threads: dict[str, int] = {}
        self._unit_cpus = 1.0
        self._runtime_env: dict[str, Any] | None = None
        # start, the node check and the runners are made once, by whichever thread comes first (the Ranker's
        # spectrum thread and its bootstrap both call run); reentrant: run calls connect calls start
        self._lock = threading.RLock()

    # -- connection ---------------------------------------------------------------------------------------------
    def start(self, paths: Sequence[str | os.PathLike[str]] = ()) -> None:
        """Join (or start) the cluster and send, without waiting, the per-node check of ``paths`` (the cache
        directory first) and ``shared_paths``, and the warm-ups; idempotent. The nodes then start their workers
        while the driver does its own start; :meth:`connect`, :meth:`check_paths` and :meth:`run` wait for the
        check before any work is sent. Raises ExecutorError (exit code 2) when the cluster cannot be reached."""
        with self._lock:
            if not self._started:
                self._start(paths)

    def _start(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        # init_ray imports Ray itself, after the settings Ray reads once when it loads (its auth mode)
        self._owns_ray = init_ray(
            self.address, timeout=self.connect_timeout, num_cpus=self.num_cpus, num_gpus=self.num_gpus
        )
        import ray

        self._started = True
        try:
            wanted = list(dict.fromkeys([*(str(p) for p in paths), *self.shared_paths]))
            self._check = NodeCheck(wanted)
            self._remote = ray.remote(run_unit)
            alive = [n for n in ray.nodes() if n.get("Alive")]
            node_cpus = [float(n.get("Resources", {}).get("CPU", 0)) for n in alive]
            warmed = None
            if self.warm and "torch" not in sys.modules:
                # The driver's thread counts need torch loaded (1.2 s): warm for the counts torch will choose
                # meanwhile, so the workers' imports overlap the driver's own.
                warmed = unit_shape(expected_threads(), node_cpus)
                self._warm_up(alive, *warmed)
            self._threads = driver_threads()
            self._unit_cpus, self._runtime_env = unit_shape(self._threads, node_cpus)
            if self.warm and warmed != (self._unit_cpus, self._runtime_env):
                self._warm_up(alive, self._unit_cpus, self._runtime_env)
        except BaseException:
            self.close()
            raise

    def connect(self) -> RayExecutor:
        """:meth:`start`, then wait for every node's check; idempotent. Raises ExecutorError (exit code 2)."""
        with self._lock:
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
        self._verified.update(proven_by(check.paths))
        if not self.quiet:  # one line per node, terminal or not: where the work can go
            for node in self.nodes:
                print(f"[ray] node {node.label} checked", file=sys.stderr, flush=True)

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
                        **_env_option(runtime_env),
                    ).remote(WARM_MODULES)
                )

    def check_paths(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        """Every node sees every path (the first is the cache directory, proven to be the same directory); the
        nodes' reports are then in :attr:`nodes`.

        Raises ExecutorError naming the node and the path; call it before any work is sent. Paths already proven
        (by the check :meth:`start` sent) are not checked again.
        """
        with self._lock:
            self.start(paths)
            self._await_check()
            needed = proven_by(resolved(paths))
            if not needed <= self._verified:
                self.nodes = NodeCheck(paths).result(self.connect_timeout)
                self._verified.update(needed)

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

        with self._lock:
            self.connect()
            if self._runners is None and (self.warm or any(t.own_threads for t in tasks)):
                self._runners = self._serial_runners()
            runners = list(self._runners or [])
        use_gpus = float(ray.cluster_resources().get("GPU", 0.0)) > 0
        turns = itertools.cycle(runners)  # round robin, in task order, over the nodes' serial runners
        shared = shared_objects(
            tasks
        )  # the dataset: put in the object store once, not pickled into every task
        refs = [
            self._submit_serial(t, next(turns), shared)
            if t.own_threads
            else self._submit(t, use_gpus, shared)
            for t in tasks
        ]
        position = {ref: i for i, ref in enumerate(refs)}
        outcomes: list[TaskOutcome | None] = [None] * len(tasks)
        pending = list(refs)
        done = 0
        try:
            while pending:
                ready, pending = ray.wait(pending, num_returns=1, timeout=WATCH_SECONDS)
                if not ready:
                    self._check_cluster()  # nothing finished for a while: is anyone left to run the units?
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

    def _check_cluster(self) -> None:
        """Raise ExecutorError (exit code 2) when the cluster stopped answering or no node with CPUs is alive: the
        units left would wait forever. (A node that died while others live is Ray's to handle: its units run
        again elsewhere, ``max_retries``.)"""
        import ray

        try:
            alive = [n for n in ray.nodes() if n.get("Alive")]
        except Exception as exc:  # noqa: BLE001 - the GCS is gone: Ray's own error, with the address
            raise ExecutorError(
                f"the Ray cluster at {self.address or 'a local instance'!r} stopped answering: {exc}",
                "check the head node (`ray status` there); the same command resumes from what was stored",
            ) from exc
        if not any(float(n.get("Resources", {}).get("CPU", 0)) > 0 for n in alive):
            lost = ", ".join(n.label for n in self.nodes) or "every node"
            raise ExecutorError(
                f"no Ray node with CPUs is left to run the remaining units (checked at connect: {lost})",
                "restart the nodes (`ray start --address=...` on each); the same command resumes from what was stored",
            )

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
                **_env_option(self._runtime_env),
            ).remote(SERIAL_WARM_MODULES)
            for node in nodes
        ]

    def _submit_serial(self, task: Task, runner: Any, shared: Mapping[int, Any]) -> Any:
        # Its work runs in its helper process, with the helper's own thread count: this process computes nothing,
        # so one thread of each pool (and no torch import: 1.2 s of a cold process, see run_unit).
        one_thread = {api: 1 for api in self._threads}
        args = tuple(shared.get(id(a), a) for a in task.args)
        return runner.run.options(name=_task_name(task)).remote(task.fn, args, dict(task.kwargs), one_thread)

    def _submit(self, task: Task, use_gpus: bool, shared: Mapping[int, Any]) -> Any:
        args = tuple(shared.get(id(a), a) for a in task.args)
        return self._remote.options(
            num_cpus=reserved_cpus(task, self._unit_cpus),
            num_gpus=task.num_gpus if use_gpus else 0,
            max_retries=self.max_retries,
            retry_exceptions=False,
            name=_task_name(task),
            **_env_option(self._runtime_env),
        ).remote(task.fn, args, dict(task.kwargs), unit_threads(task, self._threads))

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
        """For the report's run metadata: address, the nodes checked, CPUs and GPUs."""
        res = self.resources() if self._started else {}
        return {
            "executor": self.name,
            "address": self.address or "local instance",
            "nodes": [n.label for n in self.nodes],
            "cpus": res.get("CPU", 0.0),
            "gpus": res.get("GPU", 0.0),
        }
