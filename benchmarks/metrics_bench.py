"""Time every transferability metric and its baseline; print one table row per (metric, size).

Columns: metric, N, D, C, seconds (wall time of the metric call), peak MiB (the child process's peak resident set
minus its resident set right after loading the inputs: the metric's own extra memory; VmHWM reset through
/proc/self/clear_refs, falling back to ru_maxrss), ``vs base`` (seconds divided by the
baseline timed in the same run: the float64 Gram + eigh core for LogME, the blockwise N×N×D float32 product for kNN)
and ``vs ref`` (seconds divided by the reference implementation's time in ``../shared/reference/TIMINGS.md``, where
it lists that metric at that size; for LogME at other sizes, marked ``*``, divided by the reference's algorithm
re-implemented here and timed in the same run, the ``ref:logme_loop`` row).

Each measurement runs in its own subprocess so that memory high-water marks and allocator caches do not leak from one
run into the next. Inputs are float32 features of C balanced Gaussian classes (``numpy.random.default_rng(0)``), as
in TIMINGS.md; ``source_probs`` has 1000 source classes; ``reference_features`` has 1000 rows.

Usage::

    .venv/bin/python benchmarks/metrics_bench.py --quick                  # smoke run, seconds
    .venv/bin/python benchmarks/metrics_bench.py                          # the full table (N 10k/50k × D 768/2048)
    .venv/bin/python benchmarks/metrics_bench.py --sizes 20000x1024x50 --metrics logme knn
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # run as a script from anywhere: the metrics package lives at the repo root
TIMINGS = ROOT.parent / "shared" / "reference" / "TIMINGS.md"
N_SOURCE = 1000
N_REFERENCE = 1000
FULL_SIZES = ["10000x768x100", "10000x2048x100", "50000x768x100", "50000x2048x100"]
QUICK_SIZES = ["2000x128x20"]

#: extra table rows: a label, the registry name and its parameters (the reference timings list these variants)
VARIANTS = {"hscore_shrinkage": ("hscore", {"shrinkage": True})}
#: the row name each metric has in TIMINGS.md when it differs
REFERENCE_NAMES = {"ped": "ped_sfda", "knn": "knn_sklearn"}
#: the baseline each metric is compared with, timed in the same run
BASELINE_FOR = {"logme": "core:gram64+eigh", "knn": "core:matmul_nn_f32"}
#: where TIMINGS.md has no row for a size, ``vs ref`` divides by this same-run re-implementation of the
#: reference's algorithm instead (the value is marked ``*``)
SAME_RUN_REFERENCE = {"logme": "ref:logme_loop"}

_KNN_BLOCK = 2048


# ----------------------------------------------------------------------------------------------------- inputs


def make_inputs(n: int, d: int, c: int, folder: Path) -> None:
    """Write features (N×D float32), labels (N,), source_probs (N×1000) and reference_features to ``folder``."""
    rng = np.random.default_rng(0)
    labels = np.arange(n) % c
    rng.shuffle(labels)
    centres = rng.normal(size=(c, d)).astype(np.float32)
    features = rng.standard_normal(size=(n, d), dtype=np.float32) + centres[labels]
    logits = rng.standard_normal(size=(n, N_SOURCE), dtype=np.float32)
    logits[np.arange(n), labels] += 3.0
    logits -= logits.max(axis=1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(axis=1, keepdims=True)
    np.save(folder / "features.npy", features)
    np.save(folder / "labels.npy", labels)
    np.save(folder / "source_probs.npy", probs)
    np.save(folder / "reference_features.npy", rng.standard_normal(size=(N_REFERENCE, d), dtype=np.float32))


# ------------------------------------------------------------------------------------------------ child side


def _status_mib(field: str) -> float | None:
    """A memory field of /proc/self/status (VmRSS, VmHWM) in MiB, or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def _start_peak() -> float:
    """Reset the peak-RSS counter where Linux allows it, and return the level to measure extra memory from.

    ``getrusage``'s ru_maxrss survives exec, so a child forked from a big parent would start with the parent's peak;
    VmHWM belongs to this process image only, and writing 5 to clear_refs resets it to the current RSS.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return _status_mib("VmRSS") or 0.0
    except OSError:
        hwm = _status_mib("VmHWM")
        return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _peak_mib() -> float:
    hwm = _status_mib("VmHWM")
    return (
        hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    )  # Linux: KiB


def _core_gram_eigh(features: np.ndarray) -> None:
    """LogME's unavoidable core: a float64 D×D Gram matrix and its symmetric eigendecomposition."""
    f64 = features.astype(np.float64)
    np.linalg.eigh(f64.T @ f64)


def _core_matmul(features: np.ndarray) -> None:
    """Exact kNN's unavoidable core: every pairwise inner product, N×N×D in float32, done blockwise."""
    for start in range(0, features.shape[0], _KNN_BLOCK):
        features[start : start + _KNN_BLOCK] @ features.T


def reference_logme_loop(features: np.ndarray, targets: np.ndarray) -> float:
    """LogME the way the reference computes it (``METRICS.md`` § logme written out literally, as thuml/LogME
    ``LogME.fit`` does it): an SVD of the Gram matrix, the basis ``U`` formed explicitly, one Python loop per
    target column (N×K ``targets``; one-hot classes). The ``ref:logme_loop`` baseline for sizes TIMINGS.md does
    not list, and the oracle of ``tests/metrics/test_logme.py``."""
    f = features.astype(np.float64)
    n, d = f.shape
    if n > d:
        _, sq, vh = np.linalg.svd(f.T @ f)
        s = np.sqrt(sq)
        k = int((s > 1e-10).sum())
        u = (f @ vh.T)[:, :k] / s[:k]
        s = s[:k]
    else:
        u, s, _ = np.linalg.svd(f, full_matrices=False)
    sigma = s**2
    evidences = []
    for t in targets.T:
        x2 = (u.T @ t) ** 2
        r0 = (t**2).sum() - x2.sum()
        alpha = beta = 1.0
        for _ in range(11):
            tau = alpha / beta
            gamma = (sigma / (sigma + tau)).sum()
            m2 = (sigma * x2 / (tau + sigma) ** 2).sum()
            res2 = (x2 / (1 + sigma / tau) ** 2).sum() + r0
            alpha = gamma / (m2 + 1e-5)
            beta = (n - gamma) / (res2 + 1e-5)
            if abs(alpha / beta - tau) / tau <= 1e-3:
                break
        e = (
            d / 2 * np.log(alpha)
            + n / 2 * np.log(beta)
            - 0.5 * np.log(alpha + beta * sigma).sum()
            - beta / 2 * res2
            - alpha / 2 * m2
            - n / 2 * np.log(2 * np.pi)
        )
        evidences.append(e / n)
    return float(np.mean(evidences))


def run_child(task: str, folder: Path, params: dict[str, Any]) -> dict[str, float]:
    """Load the inputs, run ``task`` once, return seconds and extra peak memory (MiB)."""
    features = np.load(folder / "features.npy")
    labels = np.load(folder / "labels.npy")
    needs = {}
    if task.startswith("metric:"):
        import metrics

        name = task.split(":", 1)[1]
        meta = metrics.info(name)
        for optional in ("source_probs", "reference_features"):
            if optional in meta.uses:
                needs[optional] = np.load(folder / f"{optional}.npy")
    before = _start_peak()
    start = time.perf_counter()
    if task == "core:gram64+eigh":
        _core_gram_eigh(features)
    elif task == "core:matmul_nn_f32":
        _core_matmul(features)
    elif task == "ref:logme_loop":
        reference_logme_loop(features, np.eye(labels.max() + 1)[labels])
    else:
        metrics.compute(name, features, labels, **needs, **params)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "peak_mib": max(0.0, _peak_mib() - before)}


# ----------------------------------------------------------------------------------------------- parent side


def measure(task: str, folder: Path, params: dict[str, Any], timeout: float) -> dict[str, Any]:
    """Run one task in a fresh interpreter; a failure or timeout is reported in the row, not raised."""
    command = [
        sys.executable,
        __file__,
        "--child",
        task,
        "--data",
        str(folder),
        "--params",
        json.dumps(params),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"error": f"> {timeout:.0f} s"}
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or [f"exit code {done.returncode}"])[-1]
        return {"error": last[:60]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def reference_seconds(path: Path = TIMINGS) -> dict[tuple[str, int, int], float]:
    """``{(metric, N, D): seconds}`` from the TIMINGS.md table (rows whose seconds are not a number are skipped)."""
    if not path.exists():
        return {}
    table = {}
    for line in path.read_text().splitlines():
        match = re.match(r"\|\s*([\w_]+)\s*\|\s*(\d+)\s*\|\s*(\d+)\s*\|\s*([\d.]+)\s*\|", line)
        if match:
            table[(match.group(1), int(match.group(2)), int(match.group(3)))] = float(match.group(4))
    return table


def parse_size(text: str) -> tuple[int, int, int]:
    match = re.fullmatch(r"(\d+)x(\d+)x(\d+)", text)
    if not match:
        raise argparse.ArgumentTypeError(f"size {text!r} is not NxDxC, e.g. 10000x768x100")
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def _fmt(value: float | None, width: int) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", type=parse_size, help="NxDxC sizes (default: the full table)")
    parser.add_argument("--quick", action="store_true", help=f"smoke run at {QUICK_SIZES[0]}")
    parser.add_argument("--metrics", nargs="+", help="metric names or table variants (default: every metric)")
    parser.add_argument(
        "--timeout", type=float, default=600.0, help="seconds before one measurement is stopped"
    )
    parser.add_argument("--no-baselines", action="store_true", help="skip the baseline timings")
    parser.add_argument(
        "--threads", type=int, help="BLAS/OpenMP threads in each measurement (default: the environment's)"
    )
    parser.add_argument("--json", type=Path, help="also write the rows to this JSON file")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child:
        print(json.dumps(run_child(args.child, args.data, json.loads(args.params))))
        return 0

    if args.threads:
        # children inherit the environment; BLAS and faiss read these when they load
        for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
            os.environ[var] = str(args.threads)

    import metrics

    sizes = args.sizes or [parse_size(s) for s in (QUICK_SIZES if args.quick else FULL_SIZES)]
    rows_wanted: list[tuple[str, str, dict[str, Any]]] = []
    for name in metrics.available(kind="label"):  # the bench times feature scorers
        rows_wanted.append((name, name, {}))
        rows_wanted += [(label, base, p) for label, (base, p) in VARIANTS.items() if base == name]
    if args.metrics:
        unknown = set(args.metrics) - {label for label, _, _ in rows_wanted}
        if unknown:
            parser.error(f"unknown metric(s) {sorted(unknown)}; choose from {[r[0] for r in rows_wanted]}")
        rows_wanted = [row for row in rows_wanted if row[0] in args.metrics]
    reference = reference_seconds()

    header = f"{'metric':<18} {'N':>6} {'D':>5} {'C':>4} {'seconds':>9} {'peak MiB':>9} {'vs base':>8} {'vs ref':>7}"
    print(f"threads: OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, cpus={os.cpu_count()}")
    print(header)
    print("-" * len(header))
    results = []
    for n, d, c in sizes:
        with tempfile.TemporaryDirectory(prefix="metrics_bench_") as tmp:
            folder = Path(tmp)
            make_inputs(n, d, c, folder)
            baselines: dict[str, dict[str, Any]] = {}
            if not args.no_baselines:
                tasks = {BASELINE_FOR[r[1]] for r in rows_wanted if r[1] in BASELINE_FOR}
                tasks |= {
                    SAME_RUN_REFERENCE[r[1]]
                    for r in rows_wanted
                    if r[1] in SAME_RUN_REFERENCE and (REFERENCE_NAMES.get(r[0], r[0]), n, d) not in reference
                }
                for task in sorted(tasks):
                    baselines[task] = measure(task, folder, {}, args.timeout)
                    results.append({"metric": task, "N": n, "D": d, "C": c, **baselines[task]})
                    _print_row(task, n, d, c, baselines[task], None, None)
            for label, name, params in rows_wanted:
                row = measure(f"metric:{name}", folder, params, args.timeout)
                base = baselines.get(BASELINE_FOR.get(name, ""), {})
                vs_base = row["seconds"] / base["seconds"] if "seconds" in row and "seconds" in base else None
                ref = reference.get((REFERENCE_NAMES.get(label, label), n, d))
                same_run = baselines.get(SAME_RUN_REFERENCE.get(name, ""), {}).get("seconds")
                marked = ref is None and same_run is not None
                ref = same_run if marked else ref
                vs_ref = row["seconds"] / ref if "seconds" in row and ref else None
                results.append(
                    {"metric": label, "N": n, "D": d, "C": c, **row, "vs_base": vs_base, "vs_ref": vs_ref}
                )
                _print_row(label, n, d, c, row, vs_base, vs_ref, marked)
    if any(r.get("metric", "").startswith("ref:") for r in results):
        print(
            "* vs ref: against the ref:... row, the reference's algorithm re-implemented and timed in this run"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    return 0


def _print_row(
    label: str,
    n: int,
    d: int,
    c: int,
    row: dict[str, Any],
    vs_base: float | None,
    vs_ref: float | None,
    same_run_ref: bool = False,
) -> None:
    if "error" in row:
        print(f"{label:<18} {n:>6} {d:>5} {c:>4} {row['error']}")
    else:
        print(
            f"{label:<18} {n:>6} {d:>5} {c:>4} {row['seconds']:>9.2f} {row['peak_mib']:>9.0f} "
            f"{_fmt(vs_base, 8)} {_fmt(vs_ref, 7)}{'*' if same_run_ref and vs_ref is not None else ''}",
            flush=True,
        )


if __name__ == "__main__":
    sys.exit(main())
