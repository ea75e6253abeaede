"""The executor contract: a way of running a stage's independent units of work, never a second ranking loop.

A stage (``analyzer.ranking.stages``) turns its input into a list of :class:`Task` s, hands them to an
:class:`Executor`, and combines the :class:`TaskOutcome` s. The in-process executor runs them one after the other
in this process (the default; the reference every other executor must match to the bit). The Ray executor
(:mod:`analyzer.executors.ray_executor`) submits each one as a Ray task. Because both call the same module-level
function with the same arguments, a report does not depend on the executor.

Rules for a task's function:
- a module-level function (picklable by reference), whose arguments and result are picklable;
- deterministic: the same arguments give the same result, wherever it runs;
- it catches the failures that belong to its unit (a candidate that fails to load, a metric that does not apply)
  and returns them as data; an exception that escapes is reported as that unit's failure
  (:attr:`TaskOutcome.error`), the other units still run.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True)
class Task:
    """One independent unit of a stage's work.

    Attributes:
        stage: the stage it belongs to (``"features"``, ``"scores"``, ``"spectrum"``, ``"bootstrap"``).
        model: the candidate's spec (progress and failure messages name it); ``""`` for a unit of no one model.
        fn: a module-level function; the executor calls ``fn(*args, **kwargs)``.
        args, kwargs: its arguments (picklable).
        label: a short description for progress lines (``"knn"``, ``"shard 3/8"``); may be empty.
        num_gpus: GPUs the unit can use (0 = CPU only); an executor without GPUs ignores it.
        num_cpus: CPUs the unit needs.
        own_threads: True when the unit's work runs in a helper process with its own fixed thread count, which the
            calling process keeps and reuses for the next such unit (the weight spectrum's single-threaded
            weightwatcher worker, whose start costs seconds of imports): executors run these units one after
            another in one process (the Ray executor: in one long-lived process per node, beside the other units,
            reserving no CPU, as the in-process run does).
        threads: None: the unit computes with the driver's thread counts (torch, BLAS, OpenMP), wherever it runs;
            k: with k threads of every pool, wherever it runs (its values are then the same on every executor and
            machine), so an executor can run one such unit per k CPUs at once (the bootstrap's units: 1).
    """

    stage: str
    model: str
    fn: Callable[..., Any]
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    label: str = ""
    num_gpus: float = 0.0
    num_cpus: float = 1.0
    own_threads: bool = False
    threads: int | None = None


@dataclass(frozen=True)
class TaskOutcome:
    """What became of one task: its ``value``, or the ``error`` (one line) that escaped it.

    ``node`` names where it ran (``"local"`` in process; the Ray node's IP/id on a cluster).
    """

    task: Task
    value: Any = None
    error: str | None = None
    error_type: str | None = None
    node: str = "local"
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.error is None


#: Called as tasks finish (in completion order): ``on_done(outcome, done, total)``.
DoneCallback = Callable[[TaskOutcome, int, int], None]


class Executor(Protocol):
    """Runs batches of independent tasks; everything a stage, a command or the Ranker calls on an executor.

    Lifecycle: :meth:`start` (idempotent; may return before the executor is ready, e.g. while a cluster checks
    its nodes), :meth:`check_paths` (waits until ready and every place the tasks run sees ``paths``), any number of
    :meth:`run` calls, :meth:`close` (idempotent; releases what the executor opened, a later :meth:`start`
    opens it again). :meth:`run` starts the executor itself when the caller did not.

    Thread safety: one executor may be used from several threads at once (the Ranker runs the weight spectrum in
    a background thread beside the bootstrap): :meth:`start`, :meth:`check_paths` and :meth:`run` are safe to call
    concurrently, and ``on_done`` is called from the thread that called :meth:`run`. :meth:`close` must not race
    a :meth:`run` (the caller closes once its runs have returned).
    """

    name: str

    def start(self, paths: Sequence[str | os.PathLike[str]] = ()) -> None:
        """Open what the tasks need (a local Ray instance, a cluster connection), checking ``paths`` in the
        background where it can; raises an AnalyzerError (exit code 2) when it cannot be used."""
        ...

    def check_paths(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        """Wait until every place the tasks run sees every one of ``paths`` (the first is the cache directory);
        an AnalyzerError (exit code 2) naming the place and the path otherwise."""
        ...

    def run(self, tasks: Sequence[Task], *, on_done: DoneCallback | None = None) -> list[TaskOutcome]:
        """Run every task; ``on_done`` as each finishes; the outcomes in the order of ``tasks``."""
        ...

    def describe(self) -> dict[str, Any]:
        """For the report's run metadata: the executor's name and where it ran (address, nodes, CPUs, GPUs)."""
        ...

    def close(self) -> None: ...
