"""Executors: ways of running a stage's units of work (in process, or on a Ray cluster)."""

from __future__ import annotations

from analyzer.executors.base import DoneCallback, Executor, Task, TaskOutcome
from analyzer.executors.local import InProcessExecutor, describe_exception

__all__ = [
    "DoneCallback",
    "Executor",
    "InProcessExecutor",
    "Task",
    "TaskOutcome",
    "describe_exception",
    "make_executor",
]


def make_executor(kind: str = "local", *, address: str | None = None, **options: object) -> Executor:
    """``"local"`` (in process, the default) or ``"ray"`` (``address``: None = start a local Ray instance,
    ``"auto"`` or ``"ray://host:10001"`` = join a running cluster)."""
    if kind in ("local", "inprocess", "in-process"):
        return InProcessExecutor()
    if kind == "ray":
        from analyzer.executors.ray_executor import RayExecutor  # ray is imported only when asked for

        return RayExecutor(address=address, **options)  # type: ignore[arg-type]
    from analyzer.errors import AnalyzerError

    raise AnalyzerError(f"unknown executor {kind!r}", "use --executor local (the default) or --executor ray")
