"""Scale-out benchmark: the Ray executor against the in-process one, cluster start-up, scaling, a projection.

    .venv/bin/python benchmarks/scale_bench.py [--bootstrap 50] [--skip-zoo] [--skip-scaling]

Prints four markdown tables (the README's "Scaling out" section holds a run of them):
1. start-up: seconds to start a local Ray instance and check its node, and to join a running cluster;
2. overhead: the same ranking of the seven notMNIST candidates, run as a user runs it (``python -m analyzer
   rank``, a fresh process each time, cold caches) in process and with ``--executor ray --ray-address`` joining
   a local cluster that is already up; ``--repeats`` alternating runs of each, their mean, per stage; reports
   equal or not;
3. scaling: the notMNIST ranking on a local cluster of 1 and 2 one-CPU worker nodes (head schedules nothing);
   then the overhead table again for 12 offline-zoo candidates on sklearn digits (``--skip-zoo`` leaves it out);
4. projection: 50 timm backbones x 100 000 images on 1, 8 and 64 GPUs, from per-image costs measured here
   (decode + preprocess on one CPU core, scoring) and a stated GPU forward throughput (no GPU was measured).
Every cluster is local (127.0.0.1), at most three one-CPU nodes, and is shut down at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every node on 127.0.0.1; set before Ray starts
# The local clusters started here and every driver they run (inheriting this environment) agree on authentication:
# none (loopback only). Left unset, a driver that finds ~/.ray/auth_token sends it to a cluster that expects none,
# and Ray's actors cannot start (the executor refuses that at connect).
os.environ.setdefault("RAY_AUTH_MODE", "disabled")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)

NOTMNIST = ROOT.parent / "shared" / "benchmarks" / "notmnist"
STAGES = ("features_seconds", "scoring_seconds", "spectrum_seconds", "bootstrap_seconds")


def notmnist_specs() -> list[str]:
    return [f"torchscript:{p}" for p in sorted((NOTMNIST / "models").glob("*.pt"))]


def zoo_specs(cache: Path) -> list[str]:
    """The 12-candidate offline pool, trained briefly (the benchmark times ranking, not training quality)."""
    from analyzer.zoo import FULL_POOL, Budget, build_zoo

    built = build_zoo(cache, budget=Budget("scale-bench", steps=20), candidates=FULL_POOL, progress=False)
    return [c.spec for c in built]


def comparable(report: dict[str, Any]) -> dict[str, Any]:
    """report.json without what legitimately differs between runs (times, host, where it ran, measured latency)."""
    from tests.analyzer.executors.reports import comparable as without_volatile

    return without_volatile(report)


def rank(
    data: str, specs: list[str], executor: Any, n_bootstrap: int
) -> tuple[float, dict[str, float], dict]:
    """One cold ranking through the Python API (fresh cache): wall seconds, per-stage seconds, comparable report."""
    from analyzer.ranking import Ranker

    with tempfile.TemporaryDirectory(prefix="scale-bench-") as cache:
        t0 = time.perf_counter()
        result = Ranker(data, cache_dir=cache, progress=False, executor=executor).run(
            specs, n_bootstrap=n_bootstrap
        )
        wall = time.perf_counter() - t0
    report = result.to_dict()
    return wall, stage_seconds(report), comparable(report)


def stage_seconds(report: dict[str, Any]) -> dict[str, float]:
    return {k: float(report["timings"].get(k) or 0.0) for k in STAGES}


def cli_rank(
    data: str,
    specs: list[str],
    n_bootstrap: int,
    executor_args: list[str],
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
) -> tuple[float, dict[str, float], dict]:
    """``python -m analyzer rank`` in a fresh process with a fresh cache, as a user runs it: wall seconds (imports,
    connecting and writing the reports included), per-stage seconds, comparable report."""
    with tempfile.TemporaryDirectory(prefix="scale-bench-cli-") as work:
        models = Path(work) / "models.txt"
        models.write_text("\n".join(specs) + "\n")
        out = Path(work) / "run"
        command = [
            sys.executable,
            "-m",
            "analyzer",
            "rank",
            "--data",
            data,
            "--models",
            f"@{models}",
            "--n-bootstrap",
            str(n_bootstrap),
            "--cache-dir",
            str(Path(work) / "cache"),
            "--out",
            str(out),
            "--quiet",
            *executor_args,
        ]
        t0 = time.perf_counter()
        proc = subprocess.run([*(prefix or []), *command], cwd=ROOT, capture_output=True, text=True, env=env)
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            raise SystemExit(f"{' '.join(command)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        report = json.loads((out / "report.json").read_text())
    return wall, stage_seconds(report), comparable(report)


#: The issue's workload for two hosts: sklearn digits and three of the shipped notMNIST networks.
TWO_HOST_MODELS = ("mnist_lenet5_clntrained", "mnist_lenet5_advtrained", "cifar10_resnet20")


def two_hosts(n_bootstrap: int, skip_one_host: bool = False) -> None:
    """The same ranking in process, on a one-host cluster (2 CPUs) and on two hosts (1 CPU each; the driver on the
    head, then on the worker): network namespaces joined by a veth pair (tests/analyzer/executors/netns.py), nodes
    started with ``ray start``; and the seconds an unreachable ``--ray-address`` takes to exit with code 2."""
    from tests.analyzer.executors.netns import TwoHosts, netns_unavailable

    if (reason := netns_unavailable()) is not None:
        raise SystemExit(f"--two-hosts: {reason}")
    specs = [f"torchscript:{ROOT / 'assets' / 'notmnist' / 'models' / m}.pt" for m in TWO_HOST_MODELS]
    data = "sklearn:digits"
    print(head(["setup", "wall s", "features s", "scoring s", "spectrum s", "bootstrap s", "report equal"]))
    wall, stages, reference = cli_rank(data, specs, n_bootstrap, ["--executor", "local"])
    print(row(["in process (2 CPUs)", wall, *stages.values(), "reference"]), flush=True)
    setups = ((2, ("head",)), (1, ("head", "worker")))
    for cpus, drivers in setups[1:] if skip_one_host else setups:
        hosts = TwoHosts(f"b{cpus}", token_auth=False)
        try:
            hosts.create()
            hosts.start_head(cpus=cpus)
            if len(drivers) > 1:
                hosts.start_worker(cpus=cpus)
            for driver in drivers:
                ns = hosts.head if driver == "head" else hosts.worker
                ex = ["--executor", "ray", "--ray-address", hosts.address]
                wall, stages, report = cli_rank(data, specs, n_bootstrap, ex, hosts.exec_args(ns), hosts.env)
                setup = (
                    f"one host ({cpus} CPUs)"
                    if len(drivers) == 1
                    else f"two hosts (1+1 CPUs), driver on {driver}"
                )
                print(
                    row([setup, wall, *stages.values(), "yes" if report == reference else "NO"]), flush=True
                )
            if len(drivers) > 1:
                unreachable(hosts, data, specs[0])
        finally:
            hosts.remove()


def unreachable(hosts: Any, data: str, spec: str) -> None:
    """Seconds ``rank`` takes to exit (code 2) from the worker host when no host has the ``--ray-address``."""
    nobody = f"10.77.{hosts.subnet}.9:6391"
    argv = [
        "-m",
        "analyzer",
        "rank",
        "--data",
        data,
        "--models",
        spec,
        "--executor",
        "ray",
        "--ray-address",
        nobody,
    ]
    t0 = time.perf_counter()
    done = hosts.run(hosts.worker, argv, timeout=300)
    print(
        f"\nunreachable --ray-address {nobody}: exit {done.returncode} after {time.perf_counter() - t0:.1f} s"
    )


def cell(v: Any) -> str:
    return f"{v:.1f}" if isinstance(v, float) else str(v)


def row(values: list[Any]) -> str:
    return "| " + " | ".join(cell(v) for v in values) + " |"


def table(header: list[str], rows: list[list[Any]]) -> str:
    return "\n".join([head(header), *(row(r) for r in rows)])


#: The columns of both overhead tables (notMNIST and the zoo).
OVERHEAD_COLUMNS = [
    "workload",
    "executor",
    "wall s (mean)",
    "each run s",
    "features s",
    "scoring s",
    "spectrum s",
    "bootstrap s",
    "same report",
]


def head(header: list[str]) -> str:
    return "| " + " | ".join(header) + " |\n|" + "---|" * len(header)


@contextlib.contextmanager
def local_cluster(cpus: int) -> Iterator[str]:
    """A one-node Ray cluster on 127.0.0.1 with ``cpus`` CPUs, as `ray start --head` makes one; yields its address
    for ``--ray-address`` (this process does not join it)."""
    from ray.cluster_utils import Cluster

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": cpus, "include_dashboard": False})
    try:
        yield cluster.address
    finally:
        cluster.shutdown()


def startup() -> list[list[Any]]:
    import ray
    from ray.cluster_utils import Cluster

    from analyzer.executors.ray_executor import RayExecutor

    rows = []
    t0 = time.perf_counter()
    ex = RayExecutor().connect()
    rows.append(["start a local instance (all CPUs) + node check", time.perf_counter() - t0])
    ex.close()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
    try:
        t0 = time.perf_counter()
        ex = RayExecutor(address=cluster.address).connect()
        rows.append(["join a running one-node cluster + node check", time.perf_counter() - t0])
        ex.close()
    finally:
        ray.shutdown()
        cluster.shutdown()
    return rows


def overhead(label: str, data: str, specs: list[str], n_bootstrap: int, address: str, repeats: int) -> None:
    """Prints the in-process and the Ray rows of one workload: the mean of ``repeats`` alternating CLI runs each
    (alternating, so a change in the machine's load hits both)."""
    runs: dict[str, list[tuple[float, dict[str, float], dict]]] = {"local": [], "ray": []}
    for _ in range(repeats):
        runs["local"].append(cli_rank(data, specs, n_bootstrap, []))
        runs["ray"].append(
            cli_rank(data, specs, n_bootstrap, ["--executor", "ray", "--ray-address", address])
        )
    mean = {
        k: (
            statistics.mean(w for w, _, _ in v),
            {s: statistics.mean(st[s] for _, st, _ in v) for s in STAGES},
            " / ".join(f"{w:.1f}" for w, _, _ in v),
        )
        for k, v in runs.items()
    }
    reports = [r for v in runs.values() for _, _, r in v]
    same = "yes" if all(r == reports[0] for r in reports) else "NO"
    base = mean["local"][0]
    for key, name in (("local", "in-process"), ("ray", "Ray, joined")):
        wall, stages, each = mean[key]
        extra = "" if key == "local" else f" ({100 * (wall / base - 1):+.0f} %)"
        print(
            row(
                [
                    label,
                    name + extra,
                    wall,
                    each,
                    *(stages[k] for k in STAGES),
                    "" if key == "local" else same,
                ]
            ),
            flush=True,
        )


def scaling(data: str, specs: list[str], n_bootstrap: int) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from analyzer.executors.ray_executor import RayExecutor

    for workers in (1, 2):
        # The head has no CPU to give, so tasks run only on the worker nodes.
        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
        try:
            for _ in range(workers):
                cluster.add_node(num_cpus=1)
            cluster.wait_for_nodes()
            ex = RayExecutor(address=cluster.address).connect()
            wall, stages, _ = rank(data, specs, ex, n_bootstrap)
            ex.close()
            print(row([workers, wall, *(stages[k] for k in STAGES)]), flush=True)
        finally:
            ray.shutdown()
            cluster.shutdown()


def measure_costs() -> dict[str, float]:
    """Per-image seconds on one CPU core: PNG decode + resize to 224 + normalise; and a CPU resnet50 forward."""
    import numpy as np
    import timm
    import torch
    from PIL import Image

    torch.set_num_threads(1)
    paths = sorted((NOTMNIST / "target_images").rglob("*.png"))[:200]
    t0 = time.perf_counter()
    for p in paths:
        img = Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR)
        torch.from_numpy((np.asarray(img, dtype=np.float32) / 255.0 - 0.5) / 0.25).permute(2, 0, 1)
    decode = (time.perf_counter() - t0) / len(paths)
    model = timm.create_model("resnet50", pretrained=False).eval()
    x = torch.randn(8, 3, 224, 224)
    with torch.inference_mode():
        model(x)
        t0 = time.perf_counter()
        model(x)
    forward_cpu = (time.perf_counter() - t0) / 8
    return {"decode": decode, "forward_cpu_resnet50": forward_cpu}


def scoring_seconds_per_candidate(n: int = 2000, d: int = 512) -> float:
    """Seconds to score one candidate with the default label metrics at ``n`` samples, ``d`` features."""
    import numpy as np

    import metrics

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, n)
    feats = (rng.standard_normal((n, d)) + labels[:, None] * 0.1).astype(np.float32)
    t0 = time.perf_counter()
    for name in ("logme", "knn", "sfda"):
        metrics.compute(name, feats, labels)
    return time.perf_counter() - t0


def projection(costs: dict[str, float], score_2k: float, gpu_images_per_s: float) -> list[list[Any]]:
    """50 backbones x 100 000 images; G GPUs each fed by 8 decode cores; scoring scaled from 2 000 samples."""
    n_models, n_images, cores_per_gpu = 50, 100_000, 8
    forward = n_images / gpu_images_per_s  # per backbone on one GPU
    decode = n_images * costs["decode"] / cores_per_gpu  # per backbone, 8 cores per GPU
    io_read = n_images * 110e3 / 1e9  # 110 kB JPEG per image from a 1 GB/s shared file system
    # kNN is the superlinear term (n^2 distance work, on the GPU via faiss): scale n^2 from 2 000 samples,
    # then assume a 20x GPU speed-up for it; LogME/SFDA are linear in n.
    scoring = score_2k * (n_images / 2000) ** 2 / 20
    rows = []
    for gpus in (1, 8, 64):
        # One task per candidate: at most n_models run at once, each on one GPU; the 64-GPU case needs the
        # per-shard fan-out (one backbone over several GPUs) to use every GPU.
        per_candidate_waves = math.ceil(n_models / gpus)
        extraction = per_candidate_waves * max(forward, decode, io_read)
        sharded = n_models * max(forward, decode, io_read) / gpus
        score_wall = math.ceil(n_models / gpus) * scoring
        total = sharded + score_wall
        bound = "forward" if forward >= max(decode, io_read) else "decode/I-O"
        rows.append(
            [
                gpus,
                extraction / 60,
                sharded / 60,
                score_wall / 60,
                total / 60,
                f"scoring {100 * score_wall / total:.0f} %, extraction {100 * sharded / total:.0f} % ({bound}-bound)",
            ]
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", type=int, default=50)
    parser.add_argument("--skip-zoo", action="store_true")
    parser.add_argument("--skip-scaling", action="store_true")
    parser.add_argument("--repeats", type=int, default=2, help="alternating CLI runs of each executor")
    parser.add_argument(
        "--gpu-images-per-s",
        type=float,
        default=2000.0,
        help="assumed resnet50-class forward throughput of one GPU (fp16, batch 256); not measured here",
    )
    parser.add_argument("--two-hosts", action="store_true", help="only the two-host table (root, ip netns)")
    parser.add_argument("--skip-one-host", action="store_true", help="with --two-hosts: no one-host row")
    args = parser.parse_args()
    if args.two_hosts:
        print(f"## two hosts (bootstrap {args.bootstrap})\n")
        two_hosts(args.bootstrap, args.skip_one_host)
        return 0
    if not NOTMNIST.is_dir():
        print(f"{NOTMNIST} is absent: check out ../shared beside the repository", file=sys.stderr)
        return 2
    cpus = os.cpu_count()
    print(f"# scale_bench on {cpus} CPU(s), no GPU; bootstrap {args.bootstrap}\n", flush=True)
    print("## start-up\n")
    print(table(["what", "seconds"], startup()), "\n", flush=True)

    notmnist = (str(NOTMNIST / "target_images"), notmnist_specs())
    print(
        "## overhead (`python -m analyzer rank`, fresh process and cache each run; the cluster already up)\n"
    )
    print(head(OVERHEAD_COLUMNS))
    with local_cluster(os.cpu_count() or 1) as address:
        overhead("notMNIST, 7 real candidates", *notmnist, args.bootstrap, address, args.repeats)
        if not args.skip_zoo:
            with tempfile.TemporaryDirectory(prefix="scale-bench-zoo-") as zoo_cache:
                specs = zoo_specs(Path(zoo_cache))
                overhead(
                    "offline zoo, 12 candidates (digits)",
                    "sklearn:digits",
                    specs,
                    args.bootstrap,
                    address,
                    args.repeats,
                )
    if not args.skip_scaling:
        print("\n## scaling (notMNIST, local cluster, one-CPU worker nodes)\n")
        print(head(["workers", "wall s", "features s", "scoring s", "spectrum s", "bootstrap s"]), flush=True)
        scaling(*notmnist, args.bootstrap)
    print()
    costs = measure_costs()
    score_2k = scoring_seconds_per_candidate()
    print("## projection: 50 timm backbones x 100 000 images\n")
    print(
        f"measured on one CPU core: decode+resize+normalise {1e3 * costs['decode']:.2f} ms/image, resnet50 "
        f"forward {1e3 * costs['forward_cpu_resnet50']:.0f} ms/image; logme+knn+sfda at 2 000 x 512: "
        f"{score_2k:.2f} s. Assumed: {args.gpu_images_per_s:.0f} img/s per GPU forward, 8 decode cores per GPU, "
        "110 kB/image at 1 GB/s, kNN 20x faster on GPU.\n"
    )
    header = [
        "GPUs",
        "extraction min (task per candidate)",
        "extraction min (per shard)",
        "scoring min",
        "total min (per shard)",
        "where the time goes",
    ]
    print(table(header, projection(costs, score_2k, args.gpu_images_per_s)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
