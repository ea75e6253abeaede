"""Two hosts on one machine: two network namespaces joined by a veth pair, each running one node of a real Ray
cluster started with ``ray start`` (the head at 10.77.N.1, a worker at 10.77.N.2).

Unlike ``ray.cluster_utils.Cluster``, whose nodes all live on 127.0.0.1, the nodes here have different addresses
and reach each other only over the veth link, as two machines do: a driver that registers an address the other
host cannot reach hangs here as it would on two machines. Everything this creates is named after this process
(namespaces, the veth pair, a temporary directory), every process it started is ended by process id (``ip netns
pids``), never with ``ray stop`` (which ends every Ray process on the machine), and :meth:`TwoHosts.remove` deletes
the namespaces.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from tests.conftest import PROJECT_ROOT

#: Nodes declared dead after ~3 s without a heartbeat (Ray's default is ~30 s): a vanished host is noticed quickly.
FAST_HEALTH_CHECKS = '{"health_check_initial_delay_ms": 0, "health_check_period_ms": 1000, "health_check_failure_threshold": 3}'
#: The head's GCS port inside its namespace (each namespace has its own ports: no clash with other clusters).
GCS_PORT = 6391


def netns_unavailable() -> str | None:
    """Why two namespaces cannot be made here (the reason a test is skipped with), or None."""
    if not sys.platform.startswith("linux"):
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "creating network namespaces needs root"
    if shutil.which("ip") is None:
        return "`ip` (iproute2) is not installed"
    probe = f"anprobe{os.getpid()}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"`ip netns add` fails here: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


class TwoHosts:
    """Two namespaces (``head``, ``worker``) on the subnet 10.77.N.0/24; :meth:`start_head` and
    :meth:`start_worker` start their Ray nodes; :meth:`remove` ends everything and deletes the namespaces.

    ``token_auth``: the cluster and every driver use Ray's token authentication with a fresh token
    (RAY_AUTH_MODE=token, RAY_AUTH_TOKEN), else none (RAY_AUTH_MODE=disabled). Each instance gets its own HOME, so
    no ``~/.ray/auth_token`` of the machine is read or written.
    """

    def __init__(self, tag: str, *, token_auth: bool) -> None:
        uid = f"{os.getpid() % 100000}{tag}"
        self.subnet = 1 + (os.getpid() + sum(map(ord, tag))) % 250
        self.head, self.worker = f"anh{uid}", f"anw{uid}"
        self.head_ip, self.worker_ip = f"10.77.{self.subnet}.1", f"10.77.{self.subnet}.2"
        self.address = f"{self.head_ip}:{GCS_PORT}"
        self.token_auth = token_auth
        self.root = Path(tempfile.mkdtemp(prefix=f"rt{uid}-", dir="/tmp"))  # short: Ray's socket paths
        self._veth = (f"vh{uid}"[:15], f"vw{uid}"[:15])
        self._made: list[str] = []
        auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)} if token_auth else {}
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("RAY_")},
            "HOME": str(self.root / "home"),
            "PYTHONPATH": os.pathsep.join([str(PROJECT_ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            **auth,
        }
        (self.root / "home").mkdir()

    # -- the network --------------------------------------------------------------------------------------------
    def create(self) -> None:
        """The two namespaces, loopback up in each, joined by a veth pair with one address at each end."""
        for ns in (self.head, self.worker):
            _ip("netns", "add", ns)
            self._made.append(ns)
        vh, vw = self._veth
        _ip("link", "add", vh, "type", "veth", "peer", "name", vw)
        for ns, dev, ip in ((self.head, vh, self.head_ip), (self.worker, vw, self.worker_ip)):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{ip}/24", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")

    def exec_args(self, ns: str, *argv: str) -> list[str]:
        return ["ip", "netns", "exec", ns, *argv]

    # -- Ray ----------------------------------------------------------------------------------------------------
    def _ray(self, ns: str, *args: str) -> None:
        ray = str(Path(sys.executable).parent / "ray")
        done = subprocess.run(
            self.exec_args(ns, ray, "start", *args),
            env=self.env,
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            raise RuntimeError(f"ray start in {ns} failed: {done.stderr[-2000:]}")

    def start_head(self, cpus: int = 1) -> None:
        self._ray(
            self.head,
            "--head",
            f"--node-ip-address={self.head_ip}",
            f"--port={GCS_PORT}",
            "--include-dashboard=false",
            f"--num-cpus={cpus}",
            f"--temp-dir={self.root / 'ray'}",
            f"--system-config={FAST_HEALTH_CHECKS}",
        )

    def start_worker(self, cpus: int = 1) -> None:
        self._ray(
            self.worker,
            f"--address={self.address}",
            f"--node-ip-address={self.worker_ip}",
            f"--num-cpus={cpus}",
        )

    def pids(self, ns: str) -> list[int]:
        """The processes running in namespace ``ns`` (``ip netns pids``)."""
        done = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
        return [int(p) for p in done.stdout.split()]

    def kill(self, ns: str, *, keep: Sequence[int] = ()) -> None:
        """SIGKILL every process in ``ns`` but ``keep``, until none is left (Ray's processes restart workers)."""
        deadline = time.monotonic() + 30
        while (pids := [p for p in self.pids(ns) if p not in keep]) and time.monotonic() < deadline:
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.2)

    def remove(self) -> None:
        """End every process in the namespaces, delete them (the veth pair goes with them) and the directory."""
        for ns in self._made:
            self.kill(ns)
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self._made = []
        shutil.rmtree(self.root, ignore_errors=True)

    # -- drivers ------------------------------------------------------------------------------------------------
    def run(self, ns: str, argv: Sequence[str], *, timeout: float) -> subprocess.CompletedProcess[str]:
        """``python ARGV`` from the project's root inside namespace ``ns``, with the cluster's auth settings."""
        return subprocess.run(
            self.exec_args(ns, sys.executable, *argv),
            env=self.env,
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
