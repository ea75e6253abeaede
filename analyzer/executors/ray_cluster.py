"""Checking every node of a Ray cluster before any work is sent (joining it: :mod:`.ray_connect`).

Everything a node can get wrong is an :class:`~analyzer.errors.ExecutorError` (exit code 2) raised before the first
task runs: a node that does not answer within ``timeout`` seconds, one whose Ray or Python version or authentication
mode differs from the driver's, one that cannot import this project's packages, one that cannot fetch an object the
driver owns (it cannot reach the driver's address), and one that cannot see the data or cache path (the feature
store lives on a path every node mounts; see DESIGN.md).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import platform
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analyzer.errors import ExecutorError

INSTALL_FIX = (
    "install the project's requirements.txt (same Ray, same Python) and this project on every node, "
    "with the same versions as the driver"
)


#: The top-level packages the stages' tasks import on a node (requirements.txt's and this project's own): a node
#: without one of them is named at connect, before any work, instead of failing its first task.
REQUIRED_MODULES = (
    "numpy",
    "scipy",
    "sklearn",
    "threadpoolctl",
    "torch",
    "torchvision",
    "timm",
    "faiss",
    "safetensors",
    "weightwatcher",
    "PIL",
    "transformers",  # the hf: source's models
    "datasets",  # the hf: data sets
    "analyzer",
    "metrics",
)


@dataclass(frozen=True)
class NodeReport:
    """What one node said about itself: where it is, its versions, the given paths it cannot see, the required
    packages it cannot import, whether its workers run with token authentication (RAY_AUTH_MODE=token), and whether
    it could fetch an object this driver owns (:data:`DRIVER_REACH_TIMEOUT`)."""

    node_id: str
    ip: str
    versions: dict[str, str]
    missing: list[str]
    absent: list[str] = dataclasses.field(default_factory=list)
    token_auth: bool = False
    reaches_driver: bool = True

    @property
    def label(self) -> str:
        return node_label(self.ip, self.node_id)


def node_label(ip: str, node_id: str) -> str:
    """``"127.0.0.1/3f2a9c1d"``: the node's address and the start of its Ray id (several nodes share an IP)."""
    return f"{ip}/{node_id[:8]}"


def local_versions() -> dict[str, str]:
    """The versions that must agree between the driver and every node (the pickled tasks cross them)."""
    import ray

    import analyzer

    return {
        "python": platform.python_version(),
        "ray": ray.__version__,
        "analyzer": str(getattr(analyzer, "__version__", "unknown")),
    }


#: Seconds a node's check waits for an object the driver owns: a node that cannot reach the driver's address waits
#: forever for every argument, result and actor the driver owns, so the run would hang without a word.
DRIVER_REACH_TIMEOUT = 15.0


def probe_node(
    paths: Sequence[str],
    token_name: str | None,
    modules: Sequence[str] = REQUIRED_MODULES,
    beacon: Sequence[Any] = (),
) -> dict[str, Any]:
    """Runs on one node: its identity, versions, which of ``paths`` it cannot see and which of ``modules`` its
    Python cannot import (found by name, without importing them: milliseconds), and whether it can fetch
    ``beacon[0]``, an object the driver put in the object store (Ray asks the driver, its owner, where it is).

    ``token_name``: a file the driver wrote in the first path (the cache directory); finding it proves the node
    mounts the same directory, not merely one of the same name.
    """
    import ray

    reaches_driver = True
    if beacon:
        try:
            ray.get(beacon[0], timeout=DRIVER_REACH_TIMEOUT)
        except ray.exceptions.RayError:  # GetTimeoutError, OwnerDiedError: the same fault for the run
            reaches_driver = False
    ctx = ray.get_runtime_context()
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    missing = [p for p in paths if not os.path.exists(p)]
    if token_name is not None and paths and paths[0] not in missing:
        if not (Path(paths[0]) / token_name).is_file():
            missing.append(f"{paths[0]} (a different directory of that name: not the driver's)")
    return {
        "node_id": ctx.get_node_id(),
        "ip": ray.util.get_node_ip_address(),
        "versions": local_versions(),
        "missing": missing,
        "absent": absent,
        "token_auth": token_auth_on(),  # a worker has its cluster's mode (the raylet's environment)
        "reaches_driver": reaches_driver,
    }


def token_auth_on() -> bool:
    """This process runs Ray with token authentication (RAY_AUTH_MODE=token)."""
    return os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token"


class NodeCheck:
    """The per-node check, sent without waiting: one small task pinned to each alive node reports its versions,
    which of ``paths`` it cannot see and which of ``modules`` it cannot import. :meth:`result` waits for the
    answers and raises an ExecutorError naming the first node that fails.

    Sending it early lets the nodes start their workers while the driver does its own start (imports, opening the
    dataset); the answer is needed only before the first task. ``paths[0]``, if given, is the cache directory: the
    driver writes a token there and every node must find it (the same directory, not one of the same name).
    """

    def __init__(self, paths: Sequence[str | os.PathLike[str]], *, modules: Sequence[str] = REQUIRED_MODULES):
        import ray
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        self.paths = resolved(paths)
        self._refs: dict[Any, dict[str, Any]] = {}
        self._token: Path | None = None
        self.driver_ip = ""
        if self.paths:
            Path(self.paths[0]).mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".ray-check-{uuid.uuid4().hex[:8]}-", dir=self.paths[0])
            os.close(fd)
            self._token = Path(name)
        try:
            beacon = [ray.put(b"driver")]  # in a list: Ray passes the reference, the node fetches it itself
            self.driver_ip = ray.util.get_node_ip_address()
            probe = ray.remote(probe_node)
            self._refs = {
                probe.options(
                    num_cpus=0,
                    max_retries=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                    name="node-check",
                ).remote(
                    list(self.paths), self._token.name if self._token else None, tuple(modules), beacon
                ): n
                for n in ray.nodes()
                if n.get("Alive")
            }
        except BaseException:
            self.cancel()
            raise

    def result(self, timeout: float) -> list[NodeReport]:
        """The nodes' reports once every one answered and passed (at most ``timeout`` s from now); else an
        ExecutorError naming the node that did not answer, runs other versions, lacks a package or a path."""
        import ray

        try:
            ready, pending = ray.wait(list(self._refs), num_returns=len(self._refs), timeout=timeout)
            if pending:
                late = ", ".join(
                    node_label(self._refs[r]["NodeManagerAddress"], self._refs[r]["NodeID"]) for r in pending
                )
                raise ExecutorError(
                    f"Ray node(s) {late} did not run a check task within {timeout:.0f} s",
                    "check the nodes with `ray status`; remove dead ones or raise the connect timeout",
                )
            reports = []
            for ref in ready:
                node = self._refs[ref]
                where = node_label(node["NodeManagerAddress"], node["NodeID"])
                try:
                    raw = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a node that cannot even run our probe lacks the project
                    cause = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                    raise ExecutorError(
                        f"Ray node {where} cannot run this project's tasks: {cause}", INSTALL_FIX
                    ) from exc
                reports.append(NodeReport(**raw))
        finally:
            self.cancel()
        verify_reports(reports, local_versions(), driver_ip=self.driver_ip)
        return reports

    def cancel(self) -> None:
        """Stop waiting: checks still unanswered are cancelled and the token file removed (idempotent).

        Only unanswered ones: a forced cancel of a task that already finished can crash the driver's Ray core
        ("Tried to complete task that was not pending", Ray 2.60) when its node goes away later.
        """
        refs, self._refs = self._refs, {}
        if refs:
            import ray

            _, unanswered = ray.wait(list(refs), num_returns=len(refs), timeout=0)
            for ref in unanswered:
                ray.cancel(ref, force=True)
        if self._token is not None:
            self._token.unlink(missing_ok=True)
            self._token = None


def resolved(paths: Sequence[str | os.PathLike[str]]) -> tuple[str, ...]:
    """``paths`` as a node check names them: absolute, ``~`` expanded, links resolved."""
    return tuple(str(Path(p).expanduser().resolve()) for p in paths)


def proven_by(paths: Sequence[str]) -> set[tuple[str, bool]]:
    """What a passed :class:`NodeCheck` of (resolved) ``paths`` proves: ``(paths[0], True)``, the cache directory
    (its token was found there, which also proves it exists), and ``(path, False)`` for each path that exists on
    every node."""
    return {(p, False) for p in paths} | ({(paths[0], True)} if paths else set())


def check_nodes(
    paths: Sequence[str | os.PathLike[str]], *, timeout: float, modules: Sequence[str] = REQUIRED_MODULES
) -> list[NodeReport]:
    """:class:`NodeCheck` of ``paths`` and ``modules``, waited for: every node's report, or an ExecutorError."""
    return NodeCheck(paths, modules=modules).result(timeout)


def verify_reports(
    reports: Sequence[NodeReport], mine: dict[str, str], token_auth: bool | None = None, driver_ip: str = ""
) -> None:
    """Every node runs the driver's versions (``mine``) and authentication mode (``token_auth``; None: this
    process's), has every required package and sees every path; else an ExecutorError naming the first node that
    does not, and what differs or is missing there.

    A driver that sends a token to a cluster without authentication runs tasks, but Ray's actors never start there
    ("The actor never ran - it was cancelled before it started running", Ray 2.60): caught here, before any work.
    """
    token_auth = token_auth_on() if token_auth is None else token_auth
    for report in reports:
        if report.versions != mine:
            differ = ", ".join(
                f"{k} {report.versions.get(k)} there, {v} here"
                for k, v in mine.items()
                if report.versions.get(k) != v
            )
            raise ExecutorError(
                f"Ray node {report.label} runs other versions than this driver: {differ}", INSTALL_FIX
            )
        if report.token_auth != token_auth:
            raise ExecutorError(
                f"Ray node {report.label} runs "
                + ("without token authentication, but this driver sends a token" if token_auth else "")
                + ("with token authentication, but this driver does not" if not token_auth else "")
                + " (RAY_AUTH_MODE): Ray's actors cannot start across that difference",
                "set RAY_AUTH_MODE the same for the driver and the cluster: RAY_AUTH_MODE=disabled for this command "
                "(it is turned on when ~/.ray/auth_token exists), or start the cluster with token authentication "
                "(`ray start --head` where that token file is)",
            )
        if not report.reaches_driver:
            raise ExecutorError(
                f"Ray node {report.label} cannot reach this driver at {driver_ip or 'its address'} (an object the "
                f"driver put in the object store could not be fetched there within {DRIVER_REACH_TIMEOUT:.0f} s): "
                "every task's arguments and results would wait for it forever",
                "run the command on a node of the cluster whose address every other node can reach (start the "
                "node with `ray start --address=HEAD:PORT --node-ip-address=THAT_IP`), and let the nodes connect "
                "to each other on Ray's ports (firewall)",
            )
        if report.absent:
            raise ExecutorError(
                f"Ray node {report.label} cannot import {', '.join(report.absent)}, which this project's tasks "
                "need there",
                INSTALL_FIX,
            )
        if report.missing:
            raise ExecutorError(
                f"Ray node {report.label} cannot see {', '.join(report.missing)}",
                "put the data and the cache directory on a path every node mounts at the same place "
                "(NFS, a shared volume) and pass that path",
            )
