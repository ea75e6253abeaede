"""Executors: ways of running a stage's units of work (in process, or on a Ray cluster), in one registry.

The CLI's ``--executor`` choices, the ``[executor]`` table of a TOML config and the dashboard form's choices all
read :func:`executor_names`; :func:`get_executor` builds one by name. An executor implements
:class:`~analyzer.executors.base.Executor` (its lifecycle and thread-safety contract are stated there).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from analyzer.executors.base import DoneCallback, Executor, Task, TaskOutcome
from analyzer.executors.local import InProcessExecutor, describe_exception
from analyzer.executors.placements import PlacementLog

__all__ = [
    "DoneCallback",
    "Executor",
    "InProcessExecutor",
    "PlacementLog",
    "Task",
    "TaskOutcome",
    "describe_exception",
    "executor_from_settings",
    "executor_names",
    "get_executor",
    "open_executor",
]


def _ray(**options: Any) -> Executor:
    from analyzer.executors.ray_executor import RayExecutor  # ray is imported only when asked for

    return RayExecutor(**options)


#: name -> factory(**options). ``local``: in this process (the default; every other executor's reference);
#: ``ray``: Ray tasks on a local instance or a cluster (options: address, connect_timeout, max_retries, ...).
_EXECUTORS: dict[str, Callable[..., Executor]] = {
    "local": lambda **options: InProcessExecutor(**options),
    "ray": _ray,
}


def executor_names() -> tuple[str, ...]:
    """The registered executors' names, the default (``local``) first."""
    return tuple(_EXECUTORS)


def get_executor(name: str = "local", **options: Any) -> Executor:
    """A new executor of the registered kind ``name`` built with ``options`` (not started: see
    :func:`open_executor`). An unknown name is an AnalyzerError (exit code 2) listing the registered ones."""
    factory = _EXECUTORS.get(name)
    if factory is None:
        from analyzer.errors import AnalyzerError

        raise AnalyzerError(
            f"unknown executor {name!r}", f"use one of: {', '.join(executor_names())} (local is the default)"
        )
    return factory(**options)


def executor_from_settings(settings: Mapping[str, Any] | None) -> Executor:
    """The executor an ``[executor]`` table (or the ``--executor``/``--ray-address`` flags) asks for."""
    options = dict(settings or {})
    return get_executor(str(options.pop("kind", "local")), **options)


def open_executor(
    settings: Mapping[str, Any] | None,
    paths: Sequence[str | os.PathLike[str] | None] = (),
    *,
    wait: bool = True,
) -> Executor:
    """The executor ``settings`` ask for, ready to run: a Ray one is connected and has checked that every node
    sees ``paths`` (the cache directory first; the data path where it is a file or folder on this machine).

    ``wait=False``: only :meth:`~Executor.start` (a Ray executor joins the cluster and sends the node check without
    waiting for it, so the nodes start their workers while the caller does its own start; the check is waited
    for before its first task).

    Raises an AnalyzerError (exit code 2) before any work is sent when it cannot be used, having closed what it
    opened (a long-lived caller, the dashboard, must not keep a Ray instance it started); else the caller closes it.
    """
    executor = executor_from_settings(settings)
    local = [Path(p) for p in paths if p is not None and (p == paths[0] or Path(p).exists())]
    try:
        if wait:
            executor.check_paths(local)
        else:
            executor.start(local)
    except BaseException:
        executor.close()
        raise
    return executor
