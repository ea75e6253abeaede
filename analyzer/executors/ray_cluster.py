"""Joining or starting a Ray cluster with a bounded wait, and checking every node before any work is sent.

Everything a user can get wrong here is an :class:`~analyzer.errors.ExecutorError` (exit code 2) raised before the
first task runs: an address where nothing listens, a cluster that does not answer within ``timeout`` seconds, a
driver whose Ray or Python version differs from the cluster's, nodes that cannot import this project, and nodes
that cannot see the data or cache path (the feature store lives on a path every node mounts; see DESIGN.md).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import platform
import socket
import sys
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analyzer.errors import ExecutorError

#: Keeps every node of a local instance on 127.0.0.1 (no traffic to other addresses); read by Ray at start.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

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
    "analyzer",
    "metrics",
)


@dataclass(frozen=True)
class NodeReport:
    """What one node said about itself: where it is, its versions, the given paths it cannot see, the required
    packages it cannot import, and whether its workers run with token authentication (RAY_AUTH_MODE=token)."""

    node_id: str
    ip: str
    versions: dict[str, str]
    missing: list[str]
    absent: list[str] = dataclasses.field(default_factory=list)
    token_auth: bool = False

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


def probe_node(
    paths: Sequence[str], token_name: str | None, modules: Sequence[str] = REQUIRED_MODULES
) -> dict[str, Any]:
    """Runs on one node: its identity, versions, which of ``paths`` it cannot see and which of ``modules`` its
    Python cannot import (found by name, without importing them: milliseconds).

    ``token_name``: a file the driver wrote in the first path (the cache directory); finding it proves the node
    mounts the same directory, not merely one of the same name.
    """
    import ray

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
    }


def _reachable(address: str, timeout: float) -> None:
    """A TCP connect to ``host:port`` (a ``ray://`` or GCS address): fail fast where nothing listens."""
    target = address.split("://", 1)[-1]
    host, _, port_text = target.rpartition(":")
    if not host or not port_text.isdigit():
        raise ExecutorError(
            f"cannot read the Ray address {address!r}",
            "pass --ray-address auto, HOST:PORT (the head's GCS port, 6379) or ray://HOST:10001",
        )
    try:
        with socket.create_connection((host, int(port_text)), timeout=min(timeout, 5.0)):
            pass
    except OSError as exc:
        raise ExecutorError(
            f"no Ray cluster answers at {address!r} ({exc.strerror or exc})",
            "start one with `ray start --head` on the head node, or check the host and port",
        ) from exc


#: Environment every worker of our job gets (Ray starts workers with the raylet's environment, not the driver's):
#: the OpenBLAS spin timeout the driver set when it imported the project (see metrics/_openblas.py), and the
#: driver's OpenMP wait policy when it has one.
WORKER_ENV = ("OPENBLAS_THREAD_TIMEOUT", "OMP_WAIT_POLICY")


def worker_env() -> dict[str, str]:
    """The ``env_vars`` of our job's runtime environment: the driver's values of :data:`WORKER_ENV`."""
    return {k: os.environ[k] for k in WORKER_ENV if k in os.environ}


def _token_available() -> bool:
    """A Ray auth token this driver could send: RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH or ``~/.ray/auth_token``
    (where ``ray start`` and ``ray get-auth-token --generate`` put it)."""
    if os.environ.get("RAY_AUTH_TOKEN") or os.environ.get("RAY_AUTH_TOKEN_PATH"):
        return True
    return (Path.home() / ".ray" / "auth_token").is_file()


def token_auth_on() -> bool:
    """This process runs Ray with token authentication (RAY_AUTH_MODE=token)."""
    return os.environ.get("RAY_AUTH_MODE", "").strip().lower() == "token"


def use_token_auth() -> bool:
    """Send this machine's Ray token when joining a cluster, unless the user chose with RAY_AUTH_MODE.

    Ray 2.59+ starts clusters (``ray start --head``) with token authentication, but a driver sends its token only
    when RAY_AUTH_MODE=token, so without this a join to a cluster on this very machine fails after long retries
    with "InvalidAuthToken". A cluster without authentication accepts the token too (checked with Ray 2.60).
    Returns True when token mode is (now) on.

    Only before Ray loads: its core reads RAY_AUTH_MODE once, and a process where Ray was already imported with
    the mode unset (a notebook, a test's cluster) and then switched to it sends tokens on some calls only; there,
    actors lost their handles' reference counts and died before they ran ("all references to the actor were
    removed").
    """
    if "RAY_AUTH_MODE" not in os.environ and "ray" not in sys.modules and _token_available():
        os.environ["RAY_AUTH_MODE"] = "token"
    return token_auth_on()


def init_ray(address: str | None, *, timeout: float, num_cpus: int | None, num_gpus: int | None) -> bool:
    """Connect to ``address`` (or start a local instance when None), never waiting more than ``timeout`` s.

    Returns True when this call started Ray (the caller shuts it down), False when Ray was already running in
    this process (a test's cluster, a notebook's session), which is then reused as is.
    """
    if address is not None:
        use_token_auth()  # before Ray loads: its core reads RAY_AUTH_MODE once
    import ray

    if address not in (None, "auto"):
        _reachable(address, timeout)
    if ray.is_initialized():
        return False
    env = worker_env()
    kwargs: dict[str, Any] = {
        "logging_level": "WARNING",
        "log_to_driver": False,
        "runtime_env": {"env_vars": env} if env else None,
    }
    if address is None:
        # A local instance: every local CPU and GPU unless told otherwise; nothing outside this machine.
        kwargs.update(
            include_dashboard=False,
            num_cpus=num_cpus,
            num_gpus=num_gpus,
            _node_ip_address="127.0.0.1",
        )
    else:
        kwargs["address"] = address
    if address is None:
        # Starting our own instance talks to no one else; it must run in the main thread (its processes and
        # signal handlers are set up from there; from a thread Ray fails to reach its own GCS).
        try:
            ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001 - turned into a message with a fix
            raise _connect_error(address, exc) from exc
        return True
    outcome: dict[str, BaseException | None] = {}

    def connect() -> None:
        try:
            ray.init(**kwargs)
            outcome["error"] = None
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc

    # ray.init has no overall timeout of its own (its GCS retries can outlast a user's patience): bound it here.
    thread = threading.Thread(target=connect, name="ray-init", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        raise ExecutorError(
            f"the Ray cluster at {address or 'a local instance'!r} did not answer within {timeout:.0f} s",
            "check that the head node is up (`ray status` on it), or raise the executor's connect_timeout",
        )
    error = outcome.get("error")
    if error is not None:
        raise _connect_error(address, error) from error
    return True


def _connect_error(address: str | None, exc: BaseException) -> ExecutorError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    where = address or "a local instance"
    if "version mismatch" in str(exc).lower():
        return ExecutorError(
            f"the Ray cluster at {where!r} runs other versions than this driver: {text}", INSTALL_FIX
        )
    if isinstance(exc, ConnectionError) and address == "auto":
        return ExecutorError(
            "--ray-address auto found no running Ray cluster on this machine",
            "start one with `ray start --head`, or pass the head's address (HOST:6379 or ray://HOST:10001)",
        )
    if address is not None:
        token = os.environ.get("RAY_AUTH_MODE") == "token"
        return ExecutorError(
            f"cannot connect to Ray at {where!r}: {text}",
            "check the address and that the cluster is up (`ray status` on the head); a cluster with token "
            "authentication (the default of `ray start` since Ray 2.59) also needs its token here: "
            + (
                "this driver sent one, so check it is the head's (`ray get-auth-token` there)"
                if token
                else "copy the head's `ray get-auth-token` output to ~/.ray/auth_token or RAY_AUTH_TOKEN"
            ),
        )
    return ExecutorError(f"cannot start a local Ray instance: {text}", "see the Ray log lines above")


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
        if self.paths:
            Path(self.paths[0]).mkdir(parents=True, exist_ok=True)
            fd, name = tempfile.mkstemp(prefix=f".ray-check-{uuid.uuid4().hex[:8]}-", dir=self.paths[0])
            os.close(fd)
            self._token = Path(name)
        try:
            probe = ray.remote(probe_node)
            self._refs = {
                probe.options(
                    num_cpus=0,
                    max_retries=0,
                    scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False),
                    name="node-check",
                ).remote(list(self.paths), self._token.name if self._token else None, tuple(modules)): n
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
        verify_reports(reports, local_versions())
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
    reports: Sequence[NodeReport], mine: dict[str, str], token_auth: bool | None = None
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
