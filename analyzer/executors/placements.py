"""Where each unit of a run went: an executor seen through a log of its outcomes, for the report's run metadata."""

from __future__ import annotations

import os
import threading
from collections import Counter
from collections.abc import Sequence
from typing import Any

from analyzer.executors.base import DoneCallback, Executor, Task, TaskOutcome


class PlacementLog:
    """Wraps an :class:`Executor` (same contract, same outcomes) and records which node ran which unit.

    :meth:`summary` is what the Ranker writes under ``environment.executor`` in report.json: the executor's
    :meth:`~Executor.describe`, the number of units each node ran, and one row per unit that ran (units served from
    the cache never reach an executor and are not listed).
    """

    def __init__(self, inner: Executor) -> None:
        self.inner = inner
        self.name = inner.name
        self._outcomes: list[TaskOutcome] = []
        self._lock = threading.Lock()  # the spectrum's thread and the bootstrap's record at once

    def start(self, paths: Sequence[str | os.PathLike[str]] = ()) -> None:
        self.inner.start(paths)

    def check_paths(self, paths: Sequence[str | os.PathLike[str]]) -> None:
        self.inner.check_paths(paths)

    def run(self, tasks: Sequence[Task], *, on_done: DoneCallback | None = None) -> list[TaskOutcome]:
        outcomes = self.inner.run(tasks, on_done=on_done)
        with self._lock:
            self._outcomes.extend(outcomes)
        return outcomes

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def close(self) -> None:
        self.inner.close()

    def units(self) -> list[dict[str, Any]]:
        """One row per unit that ran: ``stage``, ``model``, ``unit`` (its label), ``node``, ``seconds``."""
        with self._lock:
            outcomes = list(self._outcomes)
        return [
            {
                "stage": o.task.stage,
                "model": o.task.model,
                "unit": o.task.label,
                "node": o.node,
                "seconds": round(o.seconds, 3),
            }
            for o in outcomes
        ]

    def summary(self) -> dict[str, Any]:
        """``describe()`` plus ``units_per_node`` ({node: units run there}) and ``units`` (:meth:`units`)."""
        units = self.units()
        return {
            **self.describe(),
            "units_per_node": dict(Counter(u["node"] for u in units)),
            "units": units,
        }
