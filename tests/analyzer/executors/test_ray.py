"""The Ray executor on a real local Ray cluster (head + one worker node, one CPU each; no mocks).

The cluster is started once per session (about 15 s on two cores) and shut down by the fixture's finalizer.
"""

from __future__ import annotations

import math
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from analyzer.executors import InProcessExecutor, Task, executor_from_settings, get_executor
from tests.conftest import PROJECT_ROOT

ray = pytest.importorskip("ray")
from ray.cluster_utils import Cluster  # noqa: E402

from analyzer.executors.ray_executor import ExecutorError, RayExecutor  # noqa: E402
from tests.analyzer.executors.reports import assert_same_report  # noqa: E402


def cluster_env() -> dict[str, str]:
    """The environment of a driver process that joins the session cluster: its authentication mode (a driver that
    finds ~/.ray/auth_token would send it, and the session cluster may run without one)."""
    import ray as ray_module

    def mode() -> str:
        return os.environ.get("RAY_AUTH_MODE", "")

    cluster_mode = ray_module.get(ray_module.remote(mode).options(num_cpus=0).remote())
    return {**os.environ, "RAY_AUTH_MODE": cluster_mode if cluster_mode == "token" else "disabled"}


# -- task functions (module level: Ray pickles them by reference) -------------------------------------------------
def slow_square(x: int, seconds: float, marker_dir: str | None = None) -> int:
    """x*x after ``seconds``; writes ``<marker_dir>/<x>.<node id>`` first, so a test sees where each attempt ran."""
    if marker_dir is not None:
        node = ray.get_runtime_context().get_node_id()
        Path(marker_dir, f"{x}.{node}").touch()
    time.sleep(seconds)
    return x * x


def exit_worker(x: int, flag: str) -> int:
    """Kills its worker process on the first attempt (a crash Ray retries), succeeds on the next."""
    if not os.path.exists(flag):
        Path(flag).touch()
        os._exit(1)
    return x


def out_of_memory(marker: str) -> None:
    """Counts its attempts in ``marker`` and raises torch's real out-of-memory error, as a CUDA forward that does
    not fit does (torch.OutOfMemoryError, also torch.cuda.OutOfMemoryError)."""
    import torch

    with open(marker, "a") as f:
        f.write("x")
    raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")


def read_env(name: str) -> str | None:
    """The worker's own environment variable (a bound ``os.environ.get`` would carry the driver's mapping)."""
    return os.environ.get(name)


def float_sum(n: int) -> float:
    """A BLAS reduction whose last bits depend on how many threads split it."""
    import numpy as np

    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, 257)).astype(np.float32)
    return float((a.T @ a).sum())


# -- the executor contract -----------------------------------------------------------------------------------------
def test_outcomes_come_back_in_task_order_with_the_node_that_ran_each(executor: RayExecutor) -> None:
    tasks = [Task("scores", f"m{i}", slow_square, (i, 0.05 * (5 - i))) for i in range(5)]
    seen: list[tuple[int, int]] = []
    outcomes = executor.run(tasks, on_done=lambda o, done, total: seen.append((done, total)))
    assert [o.error for o in outcomes] == [None] * 5
    assert [o.value for o in outcomes] == [0, 1, 4, 9, 16]
    assert [o.task for o in outcomes] == tasks
    assert seen == [(i, 5) for i in range(1, 6)]
    labels = {n.label for n in executor.nodes}
    assert len(labels) == 2 and all(o.node in labels for o in outcomes)


def test_a_failing_unit_names_its_error_and_node_and_the_others_still_run(executor: RayExecutor) -> None:
    tasks = [Task("scores", "good", math.sqrt, (4.0,)), Task("scores", "bad", math.sqrt, (-1.0,))]
    good, bad = executor.run(tasks)
    assert good.ok and good.value == 2.0
    assert not bad.ok and bad.error == "ValueError: math domain error" and bad.error_type == "ValueError"
    assert bad.node in {n.label for n in executor.nodes}


def test_an_out_of_memory_unit_is_its_candidates_failure_once_and_the_others_run(
    executor: RayExecutor, tmp_path: Path
) -> None:
    marker = tmp_path / "attempts"
    tasks = [
        Task("features", "huge", out_of_memory, (str(marker),)),
        Task("features", "small", math.sqrt, (9.0,)),
    ]
    huge, small = executor.run(tasks)
    assert small.ok and small.value == 3.0
    assert not huge.ok and huge.error_type == "OutOfMemoryError" and "CUDA out of memory" in str(huge.error)
    assert huge.node in {n.label for n in executor.nodes}
    assert marker.read_text() == "x"  # deterministic: not retried


def test_results_equal_the_in_process_executor_to_the_bit(executor: RayExecutor) -> None:
    tasks = [Task("scores", "blas", float_sum, (n,)) for n in (300, 1000)]
    local = InProcessExecutor().run(tasks)
    remote = executor.run(tasks)
    assert [o.value for o in remote] == [o.value for o in local]


def test_a_crashed_worker_process_is_retried(executor: RayExecutor, tmp_path: Path) -> None:
    (outcome,) = executor.run([Task("features", "crashy", exit_worker, (7, str(tmp_path / "crashed")))])
    assert (tmp_path / "crashed").exists()
    assert outcome.ok and outcome.value == 7


@pytest.mark.slow
def test_a_removed_node_mid_run_has_its_tasks_retried_elsewhere(
    ray_cluster: Cluster, executor: RayExecutor, tmp_path: Path
) -> None:
    extra = ray_cluster.add_node(num_cpus=1)
    ray_cluster.wait_for_nodes()
    executor.connect()
    extra_id = extra.node_id
    tasks = [Task("features", f"m{i}", slow_square, (i, 2.0, str(tmp_path))) for i in range(3)]
    result: dict[str, object] = {}
    runner = threading.Thread(target=lambda: result.setdefault("outcomes", executor.run(tasks)))
    runner.start()
    deadline = time.monotonic() + 30
    while not list(tmp_path.glob(f"*.{extra_id}")) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert list(tmp_path.glob(f"*.{extra_id}")), "no task was scheduled on the extra node"
    ray_cluster.remove_node(extra, allow_graceful=False)
    runner.join(timeout=90)
    assert not runner.is_alive()
    outcomes = result["outcomes"]
    assert [o.value for o in outcomes] == [0, 1, 4]  # type: ignore[attr-defined]
    assert all(not o.node.endswith(extra_id[:8]) for o in outcomes)  # type: ignore[attr-defined]


# -- connecting and checking the nodes -----------------------------------------------------------------------------
def test_every_node_reports_a_path_it_cannot_see_by_name(executor: RayExecutor, tmp_path: Path) -> None:
    missing = tmp_path / "not-mounted"
    with pytest.raises(ExecutorError) as info:
        executor.check_paths([tmp_path / "cache", missing])
    assert str(missing) in str(info.value) and "127.0.0.1/" in str(info.value)
    assert info.value.fix and "every node" in info.value.fix


def test_shared_paths_are_checked_on_every_node(executor: RayExecutor, tmp_path: Path) -> None:
    executor.check_paths([tmp_path / "cache", PROJECT_ROOT])
    reports = executor.nodes
    assert len(reports) == 2 and all(r.missing == [] for r in reports)
    assert not list((tmp_path / "cache").iterdir())  # the check leaves nothing behind


def test_starting_sends_the_node_check_without_waiting_and_checking_those_paths_reuses_it(
    ray_cluster: Cluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`rank` starts the executor first: the check of the cache and data paths is sent, not waited for, so the
    nodes start workers while the driver imports and opens the dataset; the Ranker's check of the same paths then
    waits for that one instead of sending another, and a path not yet proven is checked anew."""
    from analyzer.executors import ray_cluster as cluster_module
    from analyzer.executors import ray_executor as executor_module

    sent: list[tuple[str, ...]] = []

    class CountingCheck(cluster_module.NodeCheck):
        def __init__(self, paths: object, **kwargs: object) -> None:
            super().__init__(paths, **kwargs)  # type: ignore[arg-type]
            sent.append(self.paths)

    monkeypatch.setattr(executor_module, "NodeCheck", CountingCheck)
    cache, data = tmp_path / "cache", tmp_path / "data"
    data.mkdir()
    own = RayExecutor(address=ray_cluster.address, warm=False)
    try:
        own.start([cache, data])
        assert own._check is not None and len(sent) == 1  # sent, not yet waited for
        own.check_paths([cache, data])
        assert len(sent) == 1 and len(own.nodes) == 2 and own._check is None
        own.check_paths([cache, data])
        assert len(sent) == 1
        own.check_paths([cache, PROJECT_ROOT])  # not proven yet: checked now
        assert len(sent) == 2 and str(PROJECT_ROOT) in sent[-1]
    finally:
        own.close()
    assert not [p for p in cache.iterdir() if p.name.startswith(".ray-check-")]  # tokens removed


def test_a_driver_without_torch_loaded_warms_for_the_thread_count_torch_will_choose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Warm-ups are sent before the driver loads torch (1.2 s), for the count torch will start with: what
    OMP_NUM_THREADS says, else one per usable core, as torch does."""
    from analyzer.executors.ray_units import expected_threads

    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert expected_threads() == {"torch": 3}
    monkeypatch.delenv("OMP_NUM_THREADS")
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    fresh = subprocess.run(  # torch's own choice in a fresh process
        [sys.executable, "-c", "import torch; print(torch.get_num_threads())"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    assert expected_threads() == {"torch": int(fresh.stdout)}


def test_nothing_listening_at_the_address_fails_fast() -> None:
    with socket.socket() as s:  # a free port, closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(ExecutorError, match="no Ray cluster answers"):
        RayExecutor(address=f"ray://127.0.0.1:{port}").connect()
    assert time.monotonic() - t0 < 10


def test_rank_with_a_bad_ray_address_exits_with_code_2(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = [sys.executable, "-m", "analyzer", "rank", "--data", "sklearn:digits", "--models", "timm:resnet18"]
    cmd += ["--executor", "ray", "--ray-address", f"127.0.0.1:{port}", "--cache-dir", str(tmp_path)]
    t0 = time.monotonic()
    done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "no Ray cluster answers" in done.stderr and "fix:" in done.stderr
    assert time.monotonic() - t0 < 60


def test_a_silent_server_at_the_address_times_out_with_code_2(tmp_path: Path) -> None:
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()  # accepts connections, never speaks Ray's protocol
    config = tmp_path / "rank.toml"
    address = f"127.0.0.1:{server.getsockname()[1]}"
    config.write_text(f'[executor]\nkind = "ray"\naddress = "{address}"\nconnect_timeout = 5\n')
    cmd = [sys.executable, "-m", "analyzer", "rank", "--data", "sklearn:digits", "--models", "timm:resnet18"]
    cmd += ["--config", str(config), "--cache-dir", str(tmp_path / "cache")]
    try:
        t0 = time.monotonic()
        done = subprocess.run(cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    finally:
        server.close()
    assert done.returncode == 2, done.stderr
    assert address in done.stderr
    assert time.monotonic() - t0 < 60


def test_settings_pick_the_executor() -> None:
    assert isinstance(executor_from_settings(None), InProcessExecutor)
    assert isinstance(executor_from_settings({"kind": "local"}), InProcessExecutor)
    ex = executor_from_settings({"kind": "ray", "address": "auto", "connect_timeout": 5, "max_retries": 1})
    assert isinstance(ex, RayExecutor) and ex.address == "auto" and ex.max_retries == 1
    assert get_executor("ray").address is None  # type: ignore[attr-defined]


# -- extraction fanned out over the cluster ------------------------------------------------------------------------
def test_extraction_on_the_cluster_stores_the_in_process_features_to_the_bit(
    executor: RayExecutor, tiny_pool: tuple[Path, list[str]], tmp_path: Path
) -> None:
    import numpy as np

    from analyzer.datasets import open_dataset
    from analyzer.extract import extract_many
    from analyzer.extract_fanout import extract_on
    from analyzer.store import FeatureStore

    data, specs = tiny_pool
    dataset = open_dataset(str(data))
    bad = f"torchscript:{tmp_path / 'missing.pt'}"
    local = extract_many(dataset, specs, store=FeatureStore(tmp_path / "local"), progress=False)
    remote = extract_on(
        executor, dataset, [*specs, bad], store=FeatureStore(tmp_path / "ray"), progress=False
    )
    assert list(remote.entries) == specs and list(remote.failures) == [bad]
    assert "missing.pt" in remote.failures[bad] and "(on node 127.0.0.1/" in remote.failures[bad]
    for spec in specs:
        a, b = local.entries[spec], remote.entries[spec]
        assert a.key == b.key
        assert np.array_equal(a.features, b.features)
        if a.source_probs is not None:
            assert np.array_equal(a.source_probs, b.source_probs)


def test_extract_command_joins_the_cluster_given_by_address(
    ray_cluster: Cluster, tiny_pool: tuple[Path, list[str]], tmp_path: Path
) -> None:
    data, specs = tiny_pool
    cmd = [sys.executable, "-m", "analyzer", "extract", "--data", str(data), "--models", ",".join(specs[:2])]
    cmd += ["--executor", "ray", "--ray-address", ray_cluster.address, "--cache-dir", str(tmp_path)]
    cmd += ["--no-progress"]
    done = subprocess.run(
        cmd, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=180, env=cluster_env()
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("extracted") == 2
    assert len(list((tmp_path / "features").iterdir())) >= 2


# -- the whole ranking on the cluster --------------------------------------------------------------------------------
RANK_METRICS = ["logme", "knn", "sfda", "alpha"]


@pytest.fixture(scope="module")
def in_process_report(tiny_pool: tuple[Path, list[str]], tmp_path_factory: pytest.TempPathFactory) -> dict:
    from analyzer.ranking import Ranker

    data, specs = tiny_pool
    cache = tmp_path_factory.mktemp("local-cache")
    return (
        Ranker(str(data), cache_dir=cache, progress=False).run(specs, RANK_METRICS, n_bootstrap=20).to_dict()
    )


@pytest.mark.slow
def test_a_ranking_on_the_cluster_equals_the_in_process_one_field_by_field(
    executor: RayExecutor, tiny_pool: tuple[Path, list[str]], in_process_report: dict, tmp_path: Path
) -> None:
    from analyzer.ranking import Ranker

    data, specs = tiny_pool
    events: list = []
    ranker = Ranker(
        str(data), cache_dir=tmp_path, progress=False, executor=executor, on_progress=events.append
    )
    report = ranker.run(specs, RANK_METRICS, n_bootstrap=20).to_dict()
    assert_same_report(report, in_process_report)
    nodes = {getattr(e, "node", None) for e in events} - {None, "", "local"}
    assert nodes and nodes <= {n.label for n in executor.nodes}  # progress names the nodes that ran the units


@pytest.mark.slow
def test_an_interrupted_cluster_ranking_resumes_recomputing_nothing_that_finished(
    executor: RayExecutor, tiny_pool: tuple[Path, list[str]], in_process_report: dict, tmp_path: Path
) -> None:
    from analyzer.ranking import Ranker
    from analyzer.store import FeatureStore

    data, specs = tiny_pool

    def interrupt_after_first_candidate(event: object) -> None:
        if getattr(event, "stage", "") == "features" and getattr(event, "done", 0) >= 1:
            raise KeyboardInterrupt  # Ctrl-C on the driver once one candidate's features are stored

    ranker = Ranker(
        str(data),
        cache_dir=tmp_path,
        progress=False,
        executor=executor,
        on_progress=interrupt_after_first_candidate,
    )
    with pytest.raises(KeyboardInterrupt):
        ranker.run(specs, RANK_METRICS, n_bootstrap=20)
    store = FeatureStore(tmp_path)
    finished = {f: f.stat().st_mtime_ns for key in store.keys() for f in store.entry_path(key).iterdir()}
    assert finished, "no candidate finished before the interrupt"
    resumed = Ranker(str(data), cache_dir=tmp_path, progress=False, executor=executor)
    report = resumed.run(specs, RANK_METRICS, n_bootstrap=20).to_dict()
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # no finished entry was written again
    assert_same_report(report, in_process_report)


@pytest.mark.slow
def test_a_worker_node_removed_mid_extraction_leaves_the_ranking_unchanged(
    ray_cluster: Cluster, executor: RayExecutor, tiny_pool: tuple[Path, list[str]], tmp_path: Path
) -> None:
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from analyzer.ranking import Ranker
    from tests.fixtures.make_run import make_torchscript_model

    data, specs = tiny_pool
    # A candidate slow enough (~seconds) to still be extracting when its node goes.
    slow = make_torchscript_model(tmp_path / "slow.pt", seed=3, width=64, size=192)
    candidates = [slow, *specs[:2]]
    expected = Ranker(str(data), cache_dir=tmp_path / "local", progress=False).run(
        candidates, ["logme", "knn"], n_bootstrap=0
    )
    busy_nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    extra = ray_cluster.add_node(num_cpus=1)
    ray_cluster.wait_for_nodes()
    # Hold the other nodes' CPUs for a few seconds, so the first candidate is sent to the extra node.
    blockers = [
        ray.remote(slow_square)
        .options(num_cpus=1, scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
        .remote(0, 8.0)
        for node in busy_nodes
    ]
    result: dict[str, object] = {}
    ranker = Ranker(str(data), cache_dir=tmp_path / "ray", progress=False, executor=executor)
    runner = threading.Thread(
        target=lambda: result.setdefault("r", ranker.run(candidates, ["logme", "knn"], n_bootstrap=0))
    )
    runner.start()
    deadline = time.monotonic() + 120
    try:
        while not _running_features_on(extra) and time.monotonic() < deadline:
            time.sleep(0.05)
        reached = _running_features_on(extra)
    finally:  # removed even when the test fails: the next tests expect the session's two nodes
        ray_cluster.remove_node(extra, allow_graceful=False)
    runner.join(timeout=300)
    assert reached, "no features task reached the extra node"
    ray.get(blockers)
    assert not runner.is_alive()
    report = result["r"].to_dict()  # type: ignore[attr-defined]
    assert not report["failed"]
    assert_same_report(report, expected.to_dict())


def _running_features_on(node: object) -> bool:
    """True while a worker of ``node`` (a ray Node of this machine) runs a features task (its process title)."""
    raylet = node.all_processes["raylet"][0].process.pid  # type: ignore[attr-defined]
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            parent = int(stat.rsplit(")", 1)[1].split()[1])
            title = (proc / "cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        if parent == raylet and title.startswith("ray::features"):
            return True
    return False


def test_a_large_target_is_extracted_one_task_per_shard_equal_to_the_bit(
    executor: RayExecutor, tiny_pool: tuple[Path, list[str]], tmp_path: Path
) -> None:
    import numpy as np

    from analyzer.datasets import open_dataset
    from analyzer.extract import extract_many
    from analyzer.ranking.progress import ProgressEvent
    from analyzer.ranking.stages.features import FeaturesInput, run_features, shard_plan
    from analyzer.store import FeatureStore

    data, specs = tiny_pool
    dataset = open_dataset(str(data))  # 30 images: more than 4 shards of 4 rows
    local = extract_many(
        dataset, specs[:2], store=FeatureStore(tmp_path / "local"), batch_size=4, progress=False
    )
    bad = f"torchscript:{tmp_path / 'missing.pt'}"
    inp = FeaturesInput(
        (*specs[:2], bad), dataset, tmp_path / "ray", batch_size=4, progress=False, shard_size=4
    )
    assert shard_plan(inp, InProcessExecutor()) == []  # in process: one task per candidate, as always
    assert len(shard_plan(inp, executor)) == 8
    events: list[ProgressEvent] = []
    out = run_features(inp, executor, events.append)
    assert [e.model for e in out.extracted] == specs[:2] and [f.model for f in out.failed] == [bad]
    assert "missing.pt" in out.failed[0].error and out.failures[bad].fix  # the user's mistake, with its fix
    assert [e.model for e in events if e.error is not None] == [bad]  # named once, with the node it failed on
    # 8 shard tasks per candidate, then one task per sound candidate that puts its entry (the failed one's counts
    # as done without running): done/total over 27, the last event ends the stage
    done = [e.done for e in events if e.stage == "features" and e.error is None]
    assert done == [*range(1, 25), 26, 27] and {e.total for e in events} == {27}
    assert sum(e.unit.startswith("shard ") for e in events if e.stage == "features" and e.error is None) == 24
    assert {e.node for e in events} <= {n.label for n in executor.nodes}
    store = FeatureStore(tmp_path / "ray")
    for spec, extracted in zip(specs[:2], out.extracted, strict=True):
        a, b = local.entries[spec], store.get(extracted.feature_key)
        assert b is not None and a.key == b.key and b.sample_ids == a.sample_ids
        assert np.array_equal(a.features, b.features) and a.features.tobytes() == b.features.tobytes()
        if a.source_probs is not None:
            assert b.source_probs is not None and a.source_probs.tobytes() == b.source_probs.tobytes()
        assert b.meta["timings"]["images_resumed"] == len(dataset)  # the entry only assembled the shards
        assert extracted.extraction_seconds and extracted.extraction_seconds > 0  # the shards' forward time
        assert not store.partial_dir(b.key).exists()


def test_extract_on_the_cluster_runs_a_large_target_one_task_per_shard_equal_to_the_bit(
    executor: RayExecutor, tiny_pool: tuple[Path, list[str]], tmp_path: Path
) -> None:
    """``extract --executor ray`` goes through the ranking's features stage: a target of more than 4 shards gets
    one task per shard, with the command's model overrides in every task (else the shards' key would differ
    and the entry task would extract every row itself), and stores the in-process features to the bit."""
    from analyzer.datasets import open_dataset
    from analyzer.extract import extract_many
    from analyzer.extract_fanout import extract_on
    from analyzer.ranking.progress import ProgressEvent
    from analyzer.store import FeatureStore

    data, specs = tiny_pool
    dataset = open_dataset(str(data))  # 30 images: 8 shards of 4 rows
    # what `extract` passes (analyzer.commands.extract.run), with overrides that change the features
    options = dict(
        device="cpu", batch_size=4, num_workers=0, feature_layer=None, image_size=20, mean=[0.4, 0.45, 0.5],
        std=0.25, amp=True, progress=False,
    )  # fmt: skip
    local = extract_many(dataset, specs[:2], store=FeatureStore(tmp_path / "local"), shard_size=4, **options)
    plain = extract_many(
        dataset, specs[:1], store=FeatureStore(tmp_path / "plain"), batch_size=4, progress=False
    )
    bad = f"torchscript:{tmp_path / 'missing.pt'}"
    events: list[ProgressEvent] = []
    store = FeatureStore(tmp_path / "ray")
    remote = extract_on(
        executor, dataset, [*specs[:2], bad], store=store, shard_size=4, on_progress=events.append, **options
    )
    assert list(remote.entries) == specs[:2] and list(remote.failures) == [bad]
    assert "missing.pt" in remote.failures[bad] and "(on node 127.0.0.1/" in remote.failures[bad]
    assert remote.errors[bad].fix  # type: ignore[attr-defined] - the user's mistake, with its fix
    shard_events = [
        e for e in events if e.stage == "features" and e.unit.startswith("shard ") and not e.error
    ]
    assert len(shard_events) == 3 * 8 and all(e.message.startswith("[extract] ") for e in events)
    assert local.entries[specs[0]].key != plain.entries[specs[0]].key  # the overrides took effect
    for spec in specs[:2]:
        a, b = local.entries[spec], remote.entries[spec]
        assert a.key == b.key and a.sample_ids == b.sample_ids
        assert a.features.tobytes() == b.features.tobytes()
        if a.source_probs is not None:
            assert b.source_probs is not None and a.source_probs.tobytes() == b.source_probs.tobytes()
        assert b.meta["timings"]["images_resumed"] == len(dataset)  # the entry only assembled the shards
        assert not store.partial_dir(b.key).exists()


def test_probe_on_the_cluster_gives_the_in_process_accuracies_and_names_a_failures_node(
    executor: RayExecutor, tiny_pool: tuple[Path, list[str]], tmp_path: Path
) -> None:
    from analyzer.probe import probe_models

    data, specs = tiny_pool
    bad = f"torchscript:{tmp_path / 'missing.pt'}"
    local = probe_models(str(data), specs[:2], cache_dir=tmp_path / "local", folds=3, progress=False)
    failures: dict[str, BaseException] = {}
    remote = probe_models(
        str(data), [*specs[:2], bad], cache_dir=tmp_path / "ray", folds=3, progress=False, failures=failures,
        executor=executor,
    )  # fmt: skip
    assert list(failures) == [bad] and "(on node 127.0.0.1/" in str(failures[bad])
    assert {s: r["accuracy"] for s, r in remote.items()} == {s: r["accuracy"] for s, r in local.items()}


def test_an_unreadable_image_on_the_cluster_stops_extract_naming_the_node(
    executor: RayExecutor, tiny_pool: tuple[Path, list[str]], tmp_path: Path
) -> None:
    """A fault of the dataset stops ``extract``/``probe`` on a cluster as it does in process (every candidate
    would fail alike), with the message, the fix and the node."""
    from analyzer.datasets import open_dataset
    from analyzer.errors import DatasetError
    from analyzer.extract_fanout import extract_on
    from analyzer.store import FeatureStore
    from tests.fixtures.make_run import make_image_folder

    _, specs = tiny_pool
    data = make_image_folder(tmp_path / "images", classes=2, per_class=3)
    dataset = open_dataset(str(data))
    gone = sorted(p for p in Path(data).rglob("*") if p.is_file())[0]
    gone.unlink()  # after the check at open: the worker cannot read it
    with pytest.raises(DatasetError, match=r"cannot read image .*\(on node 127\.0\.0\.1/") as info:
        extract_on(executor, dataset, specs[:2], store=FeatureStore(tmp_path / "ray"), progress=False)
    assert info.value.fix and "--skip-bad" in info.value.fix


def test_each_unit_reserves_the_cpus_of_its_threads_capped_at_the_largest_node():
    """A unit runs with the driver's thread counts, so it must reserve that many CPUs, or Ray packs one unit per
    CPU and oversubscribes the cores; a unit never asks for more CPUs than any node has (it could not run)."""
    from analyzer.executors.ray_units import cpus_per_unit

    assert cpus_per_unit({"torch": 2, "blas": 2}, [2.0]) == 2.0
    assert cpus_per_unit({"torch": 8, "blas": 4}, [1.0, 1.0]) == 1.0  # the test cluster's one-CPU nodes
    assert cpus_per_unit({"torch": 1}, [16.0]) == 1.0
    assert cpus_per_unit({"torch": 4}, [2.0, 8.0]) == 4.0
    assert cpus_per_unit({}, [0.0]) == 1.0  # a head with no CPUs to give: still a valid request


def test_a_unit_reserves_the_threads_it_is_pinned_to():
    """A unit pinned to the driver's two threads reserves both CPUs; one with a fixed thread count reserves that."""
    from analyzer.executors.ray_units import reserved_cpus

    assert reserved_cpus(Task("scores", "m", math.sqrt, (1.0,)), 2.0) == 2.0
    assert reserved_cpus(Task("bootstrap", "m", math.sqrt, (1.0,), threads=1), 2.0) == 1.0
    assert reserved_cpus(Task("features", "m", math.sqrt, (1.0,), num_cpus=4.0), 2.0) == 4.0


def helper_pid(_: int) -> tuple[int, int]:
    """A unit that keeps a helper in its process (as the spectrum's weightwatcher worker): (process id, units run
    here so far)."""
    global _UNITS_HERE
    _UNITS_HERE += 1
    return os.getpid(), _UNITS_HERE


_UNITS_HERE = 0


def test_units_with_their_own_helper_process_run_one_after_another_in_one_process_per_node(
    ray_cluster: Cluster, executor: RayExecutor
) -> None:
    """``own_threads`` units (the weight spectrum) go round robin to one long-lived process per node, which runs
    them in order and keeps what they started (one weightwatcher worker per node, not one per Ray worker), from
    one run to the next; it reserves no CPU, so it runs beside the other units, and it is gone once the executor
    is closed."""
    own = RayExecutor(address=ray_cluster.address, warm=False)  # joins this process's Ray session
    try:
        first = own.run([Task("spectrum", f"m{i}", helper_pid, (i,), own_threads=True) for i in range(4)])
        second = own.run([Task("spectrum", f"n{i}", helper_pid, (i,), own_threads=True) for i in range(2)])
    finally:
        own.close()
    assert all(o.ok for o in [*first, *second])
    by_process: dict[int, list[int]] = {}
    for outcome in [*first, *second]:
        pid, count = outcome.value
        by_process.setdefault(pid, []).append(count)
    # one per node of the session cluster (placed on it unless Ray finds it unavailable), each running its share
    # in order, in the same process, across runs
    assert sorted(by_process.values()) == [[1, 2, 3], [1, 2, 3]]
    for pid in by_process:  # the per-node processes end with the executor
        deadline = time.monotonic() + 20
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not _alive(pid)
    assert ray.is_initialized()  # a joined session is left running


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()


def test_connecting_warms_a_worker_per_unit_slot_with_every_stage_library(executor: RayExecutor) -> None:
    """The warm-up tasks start at connect, one per unit that fits on each node (here one per one-CPU node), and
    every module they import exists: a misspelt one would come back in the task's answer."""
    from analyzer.executors.ray_units import WARM_MODULES

    assert len(executor._warming) == 2
    assert ray.get(executor._warming, timeout=120) == ["", ""]
    assert "torch" in WARM_MODULES and "metrics" in WARM_MODULES


def test_joining_sends_this_machines_ray_token_unless_the_user_chose(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`ray start --head` (Ray >= 2.59) requires the token it wrote to ~/.ray/auth_token; a driver sends it only
    with RAY_AUTH_MODE=token, so joining a cluster turns that on when a token is there, and never overrides a
    mode the user set. Only before Ray loads: switched on later, the mode applies to some calls only (actors died)."""
    import sys

    from analyzer.executors.ray_connect import use_token_auth

    for var in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        monkeypatch.setenv(
            var, ""
        )  # recorded as it was, so whatever use_token_auth sets is undone afterwards
        monkeypatch.delenv(var)
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ray").mkdir()
    (tmp_path / ".ray" / "auth_token").write_text("secret")
    assert "ray" in sys.modules  # this test session has loaded Ray: too late to switch, so left alone
    assert use_token_auth() is False and "RAY_AUTH_MODE" not in os.environ
    monkeypatch.delitem(sys.modules, "ray")  # as in a fresh `python -m analyzer rank` process
    assert use_token_auth() is True and os.environ["RAY_AUTH_MODE"] == "token"
    monkeypatch.delenv("RAY_AUTH_MODE")
    (tmp_path / ".ray" / "auth_token").unlink()
    assert use_token_auth() is False and "RAY_AUTH_MODE" not in os.environ  # no token anywhere: left alone
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    assert use_token_auth() is False and os.environ["RAY_AUTH_MODE"] == "disabled"


def test_a_refused_join_names_token_authentication_in_its_fix() -> None:
    from analyzer.executors.ray_connect import _connect_error

    error = _connect_error(
        "10.0.0.5:6379", ConnectionError("Failed to connect to Ray cluster at 10.0.0.5:6379")
    )
    assert "10.0.0.5:6379" in str(error) and "token" in error.fix and "ray get-auth-token" in error.fix


def test_a_cluster_without_a_package_the_tasks_need_is_refused_at_connect_naming_node_and_package(
    executor: RayExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each node's probe looks up every package the tasks import (by name, without importing it); a node whose
    Python lacks one is named with the package before any work (ExecutorError: exit code 2), instead of failing
    its first task. The missing package here is one only the driver has: its folder is on the driver's sys.path
    alone (Ray gives workers the driver's working directory, not its sys.path), so every real node of the session
    cluster runs the probe and lacks it."""
    from analyzer.errors import AnalyzerError
    from analyzer.executors.ray_cluster import INSTALL_FIX, REQUIRED_MODULES, check_nodes

    (tmp_path / "driver_only_package").mkdir()
    (tmp_path / "driver_only_package" / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    import importlib

    importlib.import_module("driver_only_package")  # the driver has it
    reports = check_nodes([], timeout=60)  # the real list: every node has every package
    assert reports and all(r.absent == [] for r in reports)
    with pytest.raises(ExecutorError) as info:
        check_nodes([], timeout=60, modules=(*REQUIRED_MODULES, "driver_only_package"))
    message = str(info.value)
    assert message.startswith("Ray node 127.0.0.1/") and "cannot import driver_only_package, which" in message
    assert isinstance(info.value, AnalyzerError) and info.value.fix == INSTALL_FIX  # the CLI's exit code 2


def test_a_node_with_other_versions_than_the_driver_is_named_with_what_differs(executor: RayExecutor) -> None:
    """Each node's probe reports its Python, Ray and analyzer versions; one that differs from the driver's stops the
    run before any work (exit code 2), naming the node and each version on both sides."""
    import dataclasses

    from analyzer.executors.ray_cluster import local_versions, verify_reports

    executor.check_paths([])
    reports = executor.nodes
    mine = local_versions()
    verify_reports(reports, mine)  # the real cluster runs the driver's versions
    older = dataclasses.replace(reports[-1], versions={**reports[-1].versions, "analyzer": "0.0.9"})
    with pytest.raises(ExecutorError) as caught:
        verify_reports([reports[0], older], mine)
    assert older.label in str(caught.value)
    assert f"analyzer 0.0.9 there, {mine['analyzer']} here" in str(caught.value)
    assert "same versions" in caught.value.fix


def test_a_cluster_whose_authentication_differs_from_the_drivers_is_refused_at_connect(
    executor: RayExecutor,
) -> None:
    """A driver that sends the token of ~/.ray/auth_token to a cluster without authentication runs tasks but no
    actors (Ray 2.60): each node's probe reports its workers' mode, and a difference stops the run at connect with
    exit code 2 and the way to make them agree."""
    import dataclasses

    from analyzer.executors.ray_cluster import local_versions, token_auth_on, verify_reports

    executor.check_paths([])
    reports = executor.nodes
    assert {r.token_auth for r in reports} == {token_auth_on()}  # the session's driver and cluster agree
    verify_reports(reports, local_versions())
    other = dataclasses.replace(reports[-1], token_auth=not token_auth_on())
    with pytest.raises(ExecutorError) as caught:
        verify_reports([reports[0], other], local_versions())
    assert other.label in str(caught.value) and "authentication" in str(caught.value)
    assert "RAY_AUTH_MODE" in caught.value.fix


def test_workers_get_the_drivers_openblas_timeout_and_openmp_wait_policy(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from analyzer.executors.ray_connect import worker_env

    monkeypatch.setenv("OPENBLAS_THREAD_TIMEOUT", "20")
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert worker_env() == {"OPENBLAS_THREAD_TIMEOUT": "20"}
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert worker_env() == {"OPENBLAS_THREAD_TIMEOUT": "20", "OMP_WAIT_POLICY": "ACTIVE"}


def test_units_with_more_threads_than_reserved_cpus_let_idle_openmp_threads_sleep(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A node smaller than the driver's thread count caps a unit's reservation: its OpenMP threads must not spin
    (co-located units starved each other); an uncapped unit keeps OpenMP's default; the driver's choice wins."""
    from analyzer.executors.ray_units import unit_runtime_env

    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    assert unit_runtime_env({"torch": 2, "blas": 2}, 1.0) == {"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}}
    assert unit_runtime_env({"torch": 2, "blas": 2}, 2.0) is None
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")
    assert unit_runtime_env({"torch": 2, "blas": 2}, 1.0) is None


def test_the_test_clusters_units_run_with_a_passive_openmp_wait(executor: RayExecutor) -> None:
    """The session cluster's one-CPU nodes cap the driver's two threads: a unit there sees OMP_WAIT_POLICY=PASSIVE."""
    (outcome,) = executor.run([Task("scores", "env", read_env, ("OMP_WAIT_POLICY",))])
    expected = os.environ.get("OMP_WAIT_POLICY", "PASSIVE") if executor._unit_cpus < 2 else None
    assert outcome.value == expected


def test_a_node_that_cannot_reach_the_driver_is_named_with_the_drivers_address(executor: RayExecutor) -> None:
    """Every node fetched the object the driver put in the object store (the session's nodes reach it); a node
    that could not would wait forever for every task's arguments and results: refused at connect, exit code 2."""
    import dataclasses

    from analyzer.executors.ray_cluster import local_versions, verify_reports

    executor.check_paths([])
    assert all(r.reaches_driver for r in executor.nodes)
    cut_off = dataclasses.replace(executor.nodes[-1], reaches_driver=False)
    with pytest.raises(ExecutorError) as caught:
        verify_reports([executor.nodes[0], cut_off], local_versions(), driver_ip="10.0.0.9")
    assert f"Ray node {cut_off.label} cannot reach this driver at 10.0.0.9" in str(caught.value)
    assert "--node-ip-address" in caught.value.fix


def test_loopback_is_forced_only_while_a_local_instance_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    """RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0 makes Ray resolve every address to 127.0.0.1: set for the start of a
    local instance (its processes inherit it), then put back, so a cluster joined later keeps its real addresses."""
    from ray._private import ray_constants

    from analyzer.executors.ray_connect import LOOPBACK_ENV, driver_node_ip, loopback_only

    monkeypatch.delenv(LOOPBACK_ENV, raising=False)
    before = ray_constants.ENABLE_RAY_CLUSTER
    with loopback_only():
        assert os.environ[LOOPBACK_ENV] == "0" and ray_constants.ENABLE_RAY_CLUSTER is False
    assert LOOPBACK_ENV not in os.environ and ray_constants.ENABLE_RAY_CLUSTER == before
    assert driver_node_ip("127.0.0.1:6391") is None  # a loopback head: Ray's own choice
    assert driver_node_ip("not-an-address") is None
