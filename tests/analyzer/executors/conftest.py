"""The session's Ray cluster for the executor tests: a head node and one worker node on 127.0.0.1.

(For a cluster whose nodes have different addresses, see netns.py and test_multihost.py.)
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.conftest import PROJECT_ROOT

# The session cluster is a local one the tests start themselves: every node on 127.0.0.1. Set before Ray is imported
# (Ray reads it once); the two-host tests give their processes an environment without it.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

if TYPE_CHECKING:
    from ray.cluster_utils import Cluster

    from analyzer.executors.ray_executor import RayExecutor

#: Nodes are declared dead after ~3 s without a heartbeat (Ray's default is ~30 s), so a removed node is noticed
#: quickly.
FAST_HEALTH_CHECKS = {
    "health_check_initial_delay_ms": 0,
    "health_check_period_ms": 1000,
    "health_check_failure_threshold": 3,
}


@pytest.fixture(scope="session")
def ray_cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    """A head node and one worker node (one CPU each, no dashboard), shut down after the session.

    Its workers inherit PYTHONPATH from this process: they import this project and this test module (whose
    functions the tests send), as workers on a real cluster import the installed project.
    """
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(
        [str(PROJECT_ROOT), str(PROJECT_ROOT / "tests")] + ([saved] if saved else [])
    )

    def restore() -> None:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved

    request.addfinalizer(restore)
    pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False, "_system_config": FAST_HEALTH_CHECKS},
    )
    request.addfinalizer(cluster.shutdown)
    cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster


@pytest.fixture(scope="session")
def executor(ray_cluster: Cluster) -> Iterator[RayExecutor]:
    """One driver connection for the session (connecting costs seconds); disconnected at the end."""
    from analyzer.executors.ray_executor import RayExecutor

    ex = RayExecutor(address=ray_cluster.address, connect_timeout=60)
    ex.connect()
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def tiny_pool(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A 30-image folder (3 classes) and three small TorchScript networks, on a path every node sees."""
    from tests.fixtures.make_run import make_image_folder, make_torchscript_model

    root = tmp_path_factory.mktemp("ray-pool")
    data = make_image_folder(root / "images", classes=3, per_class=10)
    specs = [
        make_torchscript_model(root / "m0.pt", seed=0, width=8, source_accuracy=0.7),
        make_torchscript_model(root / "m1.pt", seed=1, width=12, source_accuracy=0.6),
        make_torchscript_model(root / "m2.pt", seed=2, width=6, classify=False),
    ]
    return data, specs
