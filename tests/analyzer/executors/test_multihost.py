"""The Ray executor on a real two-host cluster: two network namespaces joined by a veth pair (see netns.py), a head
and a worker started with ``ray start``, and the CLI run from either host, with Ray's token authentication and
without it. Needs root and ``ip netns`` (CI runs as root); skipped with the reason otherwise.

One cluster per authentication mode serves the module (starting one costs about 10 s on two cores).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.analyzer.executors.netns import TwoHosts, netns_unavailable
from tests.analyzer.executors.reports import assert_same_report

pytestmark = [pytest.mark.slow]
pytest.importorskip("ray")

METRICS = "logme,knn,sfda,alpha"


def rank_argv(pool: tuple[Path, list[str]], cache: Path, out: Path, *executor: str) -> list[str]:
    data, specs = pool
    argv = ["-m", "analyzer", "rank", "--data", str(data), "--models", ",".join(specs), "--metrics", METRICS]
    return [*argv, "--n-bootstrap", "20", "--cache-dir", str(cache), "--out", str(out), *executor]


@pytest.fixture(scope="module")
def in_process_report(tiny_pool: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> dict:
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    root = tmp_path_factory.mktemp("in-process")
    argv = rank_argv(tiny_pool, root / "cache", root / "out", "--executor", "local")
    done = subprocess.run(
        [sys.executable, *argv], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr
    return json.loads((root / "out" / "report.json").read_text())


@pytest.fixture(scope="module", params=["token", "disabled"])
def hosts(request: pytest.FixtureRequest) -> Iterator[TwoHosts]:
    """A two-host cluster (head and worker namespaces, one CPU each), with token authentication or without;
    everything it started is ended by process id and its namespaces deleted, also when a test fails."""
    reason = netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    two = TwoHosts(request.param[0], token_auth=request.param == "token")
    request.addfinalizer(two.remove)
    two.create()
    two.start_head()
    two.start_worker()
    yield two


def analyzer_processes(two: TwoHosts, ns: str) -> list[int]:
    """Processes of a driver (``python -m analyzer``) still running in namespace ``ns``."""
    left = []
    for pid in two.pids(ns):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"analyzer" in cmdline:
            left.append(pid)
    return left


@pytest.mark.parametrize("where", ["head", "worker"])
def test_a_ranking_from_either_host_equals_the_in_process_one_with_work_on_both(
    hosts: TwoHosts, where: str, tiny_pool: tuple[Path, list[str]], in_process_report: dict, tmp_path: Path
) -> None:
    """The driver on the head or on the other node (Ray lets a driver run on any node): the same report, field
    by field; report.json names the node of every unit and the worker host ran some; stderr, not a terminal here,
    has a line per node checked and per stage with the nodes that ran it; the driver leaves no process behind."""
    ns = hosts.head if where == "head" else hosts.worker
    argv = rank_argv(
        tiny_pool, tmp_path / "cache", tmp_path / "out", "--executor", "ray", "--ray-address", hosts.address
    )
    done = hosts.run(ns, argv, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert_same_report(report, in_process_report)
    executor = report["environment"]["executor"]
    assert executor["executor"] == "ray" and len(executor["nodes"]) == 2
    per_node = executor["units_per_node"]
    assert any(node.startswith(f"{hosts.worker_ip}/") for node in per_node), (
        per_node
    )  # the worker host worked
    assert {u["node"] for u in executor["units"]} == set(per_node)
    assert {u["stage"] for u in executor["units"]} >= {"features", "scores", "bootstrap"}
    assert f"[ray] node {hosts.worker_ip}/" in done.stderr and f"[ray] node {hosts.head_ip}/" in done.stderr
    assert "features: 3/3 done (" in done.stderr
    assert analyzer_processes(hosts, ns) == []


def test_an_unreachable_ray_address_exits_with_code_2_within_a_minute(
    hosts: TwoHosts, tiny_pool: tuple[Path, list[str]], tmp_path: Path
) -> None:
    if not hosts.token_auth:
        pytest.skip("checked once, with the token cluster")
    nobody = f"10.77.{hosts.subnet}.9:6391"  # on the link, but no host has that address
    argv = rank_argv(
        tiny_pool, tmp_path / "cache", tmp_path / "out", "--executor", "ray", "--ray-address", nobody
    )
    t0 = time.monotonic()
    done = hosts.run(hosts.worker, argv, timeout=120)
    seconds = time.monotonic() - t0
    assert done.returncode == 2, done.stderr[-3000:]
    assert nobody in done.stderr and "fix:" in done.stderr
    assert seconds < 60, seconds
    assert analyzer_processes(hosts, hosts.worker) == []


#: A driver on the head that kills every process of the worker host (its raylet, its workers, its object store)
#: once the first unit of work has finished, then ranks to the end and writes report.json.
KILL_MID_RUN = """
import json, os, signal, subprocess, sys
from analyzer.ranking import Ranker
data, specs, cache, out, victim = sys.argv[1], sys.argv[2].split(","), sys.argv[3], sys.argv[4], sys.argv[5]
killed = []
def kill_worker_host(event):
    if killed or event.stage != "features":
        return
    pids = subprocess.run(["ip", "netns", "pids", victim], capture_output=True, text=True).stdout.split()
    for pid in pids:
        os.kill(int(pid), signal.SIGKILL)
    killed.extend(pids)
ranker = Ranker(data, cache_dir=cache, progress=False, executor="ray", ray_address=sys.argv[6],
                on_progress=kill_worker_host)
result = ranker.run(specs, sys.argv[7].split(","), n_bootstrap=20)
json.dump(result.to_dict(), open(out, "w"))
print("killed", len(killed))
"""


def test_the_worker_host_killed_mid_run_leaves_the_same_report(
    hosts: TwoHosts, tiny_pool: tuple[Path, list[str]], in_process_report: dict, tmp_path: Path
) -> None:
    """Every process of the worker host killed once the first unit finished: Ray notices the node is gone, runs
    its units again on the head, and the report is the in-process one (then the worker host is started again)."""
    if not hosts.token_auth:
        pytest.skip("checked once, with the token cluster")
    data, specs = tiny_pool
    out = tmp_path / "report.json"
    argv = ["-c", KILL_MID_RUN, str(data), ",".join(specs), str(tmp_path / "cache"), str(out), hosts.worker]
    try:
        done = hosts.run(hosts.head, [*argv, hosts.address, METRICS], timeout=900)
        assert done.returncode == 0, done.stderr[-3000:]
        assert done.stdout.split()[-1] != "0", "the worker host had no process to kill"
        assert_same_report(json.loads(out.read_text()), in_process_report)
        assert hosts.pids(hosts.worker) == []
    finally:
        hosts.kill(hosts.worker)
        hosts.start_worker()
