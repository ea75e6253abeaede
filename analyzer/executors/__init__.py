"""Executors: ways of running a stage's units of work (in process, or on a Ray cluster)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from analyzer.executors.base import DoneCallback, Executor, Task, TaskOutcome
from analyzer.executors.local import InProcessExecutor, describe_exception

__all__ = [
    "DoneCallback",
    "Executor",
    "InProcessExecutor",
    "Task",
    "TaskOutcome",
    "describe_exception",
    "executor_from_settings",
    "open_executor",
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


def executor_from_settings(settings: Mapping[str, Any] | None) -> Executor:
    """The executor an ``[executor]`` table (or the ``--executor``/``--ray-address`` flags) asks for."""
    options = dict(settings or {})
    kind = str(options.pop("kind", "local"))
    address = options.pop("address", None)
    return make_executor(kind, address=address, **options)


def open_executor(
    settings: Mapping[str, Any] | None,
    paths: Sequence[str | os.PathLike[str] | None] = (),
    *,
    wait: bool = True,
) -> Executor:
    """The executor ``settings`` ask for, ready to run: a Ray one is connected and has checked that every node
    sees ``paths`` (the cache directory first; the data path where it is a file or folder on this machine).

    ``wait=False``: a Ray executor only starts (joins the cluster and sends the node check without waiting for
    it), so the nodes start their workers while the caller does its own start; the check is waited for before
    its first task (:meth:`~analyzer.executors.ray_executor.RayExecutor.start`).

    Raises an AnalyzerError (exit code 2) before any work is sent when it cannot be used, having closed what it
    opened (a long-lived caller, the dashboard, must not keep a Ray instance it started); else the caller closes it.
    """
    executor = executor_from_settings(settings)
    check = getattr(executor, "check_paths" if wait else "start", None)
    if check is not None:
        local = [Path(p) for p in paths if p is not None and (p == paths[0] or Path(p).exists())]
        try:
            check(local)
        except BaseException:
            executor.close()
            raise
    return executor
