"""Joining or starting a Ray cluster, with a bounded wait and the messages a user needs when it fails.

Everything a user can get wrong here is an :class:`~analyzer.errors.ExecutorError` (exit code 2) raised before the
first task runs: an address where nothing listens, a cluster that does not answer within ``timeout`` seconds, a
version or authentication mismatch. Where the driver attaches (:func:`driver_node_ip`) and that a local instance
stays on 127.0.0.1 (:func:`loopback_only`, only while this project starts one) are decided here too.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from analyzer.errors import ExecutorError
from analyzer.executors.ray_cluster import INSTALL_FIX, token_auth_on


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


#: Ray's switch that keeps every address on 127.0.0.1 (read once, when Ray is imported).
LOOPBACK_ENV = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def loopback_only() -> Iterator[None]:
    """While this project starts a local Ray instance: every address of it is 127.0.0.1 (no traffic to other
    addresses, no firewall prompt). Ray reads RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 once at import and then resolves
    every address, a remote head's included, to 127.0.0.1; so it is set here, for the processes this start spawns
    (which inherit it) and for Ray's constant in this process, and put back afterwards: a cluster joined later by
    the same process (a dashboard) gets its real addresses."""
    from ray._private import ray_constants

    saved_env = os.environ.get(LOOPBACK_ENV)
    saved = ray_constants.ENABLE_RAY_CLUSTER
    os.environ[LOOPBACK_ENV] = "0"
    ray_constants.ENABLE_RAY_CLUSTER = False
    try:
        yield
    finally:
        ray_constants.ENABLE_RAY_CLUSTER = saved
        if saved_env is None:
            os.environ.pop(LOOPBACK_ENV, None)
        else:
            os.environ[LOOPBACK_ENV] = saved_env


def driver_node_ip(address: str) -> str | None:
    """The address of this machine's Ray node for a driver joining the cluster at ``HOST:PORT``: the IP this machine
    reaches the head from, when a raylet here was started with it; else None (Ray's own choice).

    Ray attaches a driver to a raylet it finds among this machine's processes, preferring the head's. Where one
    machine runs several Ray nodes (containers or network namespaces sharing a process table), a driver on a
    worker node then took the head's raylet and registered the head's IP as its own address, which no node can
    reach: every object it owns (ray.put, large arguments, actors) was waited for forever, without an error.
    """
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect((host, int(port)))  # UDP: picks the route, sends nothing
            ip = str(probe.getsockname()[0])
        from ray._private.services import _find_address_from_flag

        local_raylets = _find_address_from_flag("--node_ip_address")
    except (OSError, ValueError, ImportError):
        return None
    # a loopback address is left to Ray, which would resolve it to this machine's outward address first
    return ip if ip in local_raylets and not ip.startswith("127.") else None


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
        # A local instance: every local CPU and GPU unless told otherwise; nothing outside this machine. It must
        # start in the main thread (its processes and signal handlers are set up from there; from a thread Ray
        # fails to reach its own GCS), and talks to no one else: no bound needed.
        kwargs.update(
            include_dashboard=False, num_cpus=num_cpus, num_gpus=num_gpus, _node_ip_address="127.0.0.1"
        )
        try:
            with loopback_only():
                ray.init(**kwargs)
        except Exception as exc:  # noqa: BLE001 - turned into a message with a fix
            raise _connect_error(address, exc) from exc
        return True
    kwargs["address"] = address
    if address != "auto" and "://" not in address and (ip := driver_node_ip(address)) is not None:
        kwargs["_node_ip_address"] = ip
    _bounded_init(ray, kwargs, address, timeout)
    return True


def _bounded_init(ray: Any, kwargs: dict[str, Any], address: str, timeout: float) -> None:
    """``ray.init(**kwargs)`` in a thread, waited for at most ``timeout`` s: ray.init has no overall timeout of its
    own (its GCS retries can outlast a user's patience). A late init is shut down as soon as it returns, so no
    connection outlives the error (the thread itself ends with Ray's own retries, or with the process)."""
    outcome: dict[str, BaseException | None] = {}
    gave_up = threading.Event()

    def connect() -> None:
        try:
            ray.init(**kwargs)
            outcome["error"] = None
            if gave_up.is_set():
                ray.shutdown()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=connect, name="ray-init", daemon=True)
    thread.start()
    thread.join(timeout)
    if thread.is_alive():
        gave_up.set()
        raise ExecutorError(
            f"the Ray cluster at {address!r} did not answer within {timeout:.0f} s",
            "check that the head node is up (`ray status` on it) and that this machine is one of its nodes "
            "(`ray start --address=...` here first), or raise the executor's connect_timeout",
        )
    error = outcome.get("error")
    if error is not None:
        raise _connect_error(address, error) from error


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
