"""The in-process executor: the default, and the reference every other executor is compared with.

Units run one after the other, except units that declare a fixed thread count (``Task.threads``, the bootstrap's
single-threaded units): those run that many threads each, with as many units at once as this process has CPUs for
(a thread pool: numpy releases the GIL in its products and linear algebra, and the metrics call the LAPACK routines
they repeat through ``metrics/_lapack.py``, which does too, where scipy's wrappers hold it), and their values do not
depend on how many ran at once. ``on_done`` is always called from the calling thread, in task order (as soon as a
unit and every unit before it have finished).
"""

from __future__ import annotations

import concurrent.futures
import os
import time
from collections.abc import Sequence
from typing import Any

from analyzer.executors.base import DoneCallback, Task, TaskOutcome


def describe_exception(exc: BaseException) -> str:
    """One line for a failed unit: the user-facing text for our errors, type and text otherwise."""
    from analyzer.errors import describe

    return describe(exc)


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # macOS, Windows
        return os.cpu_count() or 1


def run_task(task: Task) -> TaskOutcome:
    """``task.fn(*args, **kwargs)``; an exception is the unit's failure, returned as data."""
    t0 = time.perf_counter()
    try:
        value = task.fn(*task.args, **dict(task.kwargs))
        return TaskOutcome(task, value=value, seconds=time.perf_counter() - t0)
    except KeyboardInterrupt:
        raise
    except Exception as exc:  # noqa: BLE001 - reported as this unit's failure; the other units still run
        return TaskOutcome(
            task,
            error=describe_exception(exc),
            error_type=type(exc).__name__,
            seconds=time.perf_counter() - t0,
        )


class InProcessExecutor:
    """Runs tasks in this process: one after the other, or, for units with a fixed thread count, several at once
    (module docstring). ``max_workers`` caps that (default: the CPUs available). Holds no state between runs, so
    any number of threads may call :meth:`run` at once."""

    name = "local"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers

    def run(self, tasks: Sequence[Task], *, on_done: DoneCallback | None = None) -> list[TaskOutcome]:
        threads = {t.threads for t in tasks}
        if not tasks or None in threads:
            return self._one_by_one(tasks, on_done)
        from threadpoolctl import threadpool_limits

        per_unit = max(int(t) for t in threads if t is not None)
        workers = min(len(tasks), max(1, (self.max_workers or available_cpus()) // per_unit))
        with threadpool_limits(limits=per_unit):  # process-wide: every unit computes with per_unit threads
            if workers == 1:
                return self._one_by_one(tasks, on_done)
            return self._in_parallel(tasks, workers, on_done)

    @staticmethod
    def _one_by_one(tasks: Sequence[Task], on_done: DoneCallback | None) -> list[TaskOutcome]:
        outcomes: list[TaskOutcome] = []
        for task in tasks:
            outcomes.append(run_task(task))
            if on_done is not None:
                on_done(outcomes[-1], len(outcomes), len(tasks))
        return outcomes

    @staticmethod
    def _in_parallel(tasks: Sequence[Task], workers: int, on_done: DoneCallback | None) -> list[TaskOutcome]:
        outcomes: list[TaskOutcome | None] = [None] * len(tasks)
        with concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="unit") as pool:
            futures = {pool.submit(run_task, task): i for i, task in enumerate(tasks)}
            reported = 0
            try:
                for future in concurrent.futures.as_completed(futures):
                    outcomes[futures[future]] = future.result()
                    # in task order, from this thread: a stage's events stay together (the tasks come grouped
                    # by stage) and a dashboard's callbacks run in its own thread
                    while reported < len(tasks) and (outcome := outcomes[reported]) is not None:
                        reported += 1
                        if on_done is not None:
                            on_done(outcome, reported, len(tasks))
            except BaseException:
                for future in futures:
                    future.cancel()
                raise
        return [o for o in outcomes if o is not None]

    def start(self, paths: Sequence[str | os.PathLike[str]] = ()) -> None:
        """Nothing to open: the tasks run in this process."""

    def check_paths(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        """Nothing to check: this process is where the tasks run, and it opened the paths itself."""

    def describe(self) -> dict[str, Any]:
        return {"executor": self.name, "nodes": ["local"], "cpus": float(available_cpus()), "gpus": 0.0}

    def close(self) -> None:
        """Nothing to release."""
