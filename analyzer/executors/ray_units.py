"""What runs on a Ray worker, and how much of a node it takes: the Ray executor's units.

- :func:`run_unit` runs one ``Task``'s function with the driver's thread counts (so results equal the in-process
  ones to the bit) and returns its failure as data; :class:`SerialRunner` runs the ``own_threads`` units (the
  weight spectrum) one after another in one long-lived process per node; :func:`warm_worker` imports the stages'
  libraries ahead of the first task.
- :func:`driver_threads` / :func:`expected_threads` say which thread counts units are pinned to;
  :func:`cpus_per_unit`, :func:`reserved_cpus` and :func:`unit_runtime_env` turn them into a Ray reservation.

:mod:`analyzer.executors.ray_executor` submits these; nothing here talks to the driver.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from analyzer.executors.base import Task
from analyzer.executors.local import describe_exception
from analyzer.executors.ray_cluster import node_label

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


def unit_shape(threads: Mapping[str, int], node_cpus: Sequence[float]) -> tuple[float, dict[str, Any] | None]:
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


#: Argument types never worth a trip through the object store (small, and cheap to pickle into each task).
_INLINE = (str, bytes, int, float, bool, type(None))


def shared_objects(tasks: Sequence[Task]) -> dict[int, Any]:
    """``{id(arg): ObjectRef}`` for each positional argument object that several of ``tasks`` pass (the dataset of
    every extraction task): put in the object store once, so each node fetches it once instead of every task
    carrying its own pickled copy. Valid while ``tasks`` hold their arguments (the caller's run)."""
    import ray

    seen: dict[int, int] = {}
    objects: dict[int, Any] = {}
    for task in tasks:
        for arg in task.args:
            if not isinstance(arg, _INLINE):
                seen[id(arg)] = seen.get(id(arg), 0) + 1
                objects[id(arg)] = arg
    return {key: ray.put(objects[key]) for key, count in seen.items() if count > 1}


def run_unit(
    fn: Callable[..., Any], args: tuple[Any, ...], kwargs: Mapping[str, Any], threads: Mapping[str, int]
) -> tuple[str, Any, str | None, str | None, str, float]:
    """Runs on a Ray worker: ``fn(*args, **kwargs)`` with the driver's thread counts.

    Returns ``(status, value, error, error_type, node, seconds)``; an exception of the unit is returned, not
    raised, so Ray does not retry a deterministic failure and the driver learns the node it happened on.
    """
    import ray
    from threadpoolctl import threadpool_limits

    # arguments the driver put in the object store once (shared_objects): fetched here, zero-copy where they can be
    args = tuple(ray.get(a) if isinstance(a, ray.ObjectRef) else a for a in args)
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
