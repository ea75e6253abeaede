"""The in-process executor: the default, and the reference every other executor is compared with."""

from __future__ import annotations

import time
from collections.abc import Sequence

from analyzer.executors.base import DoneCallback, Task, TaskOutcome


def describe_exception(exc: BaseException) -> str:
    """One line for a failed unit: the user-facing text for our errors, type and text otherwise."""
    from analyzer.errors import describe

    return describe(exc)


class InProcessExecutor:
    """Runs tasks one after the other in this process, in order."""

    name = "local"

    def run(self, tasks: Sequence[Task], *, on_done: DoneCallback | None = None) -> list[TaskOutcome]:
        outcomes: list[TaskOutcome] = []
        for task in tasks:
            t0 = time.perf_counter()
            try:
                value = task.fn(*task.args, **dict(task.kwargs))
                outcome = TaskOutcome(task, value=value, seconds=time.perf_counter() - t0)
            except KeyboardInterrupt:
                raise
            except Exception as exc:  # noqa: BLE001 - reported as this unit's failure; the other units still run
                outcome = TaskOutcome(
                    task,
                    error=describe_exception(exc),
                    error_type=type(exc).__name__,
                    seconds=time.perf_counter() - t0,
                )
            outcomes.append(outcome)
            if on_done is not None:
                on_done(outcome, len(outcomes), len(tasks))
        return outcomes

    def close(self) -> None:
        return None
