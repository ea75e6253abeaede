"""How much the measured cost moves between two runs: the demo's seven backbones measured twice, nothing cached.

    python benchmarks/cost_repeat.py [--threads 1] [--batch-size 64] [--runs 2]

Prints the demo's cost table (the first run) and, per backbone, the batch-1 latency of each run (median and IQR
of 30 timed passes) with the relative change between the first two. FLOPs, parameters, weights and the CPU's peak
memory are counts and must not move at all (checked). Times depend on the machine's load: say what else ran.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the demo uses 1)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)
    os.environ["OMP_NUM_THREADS"] = str(args.threads)

    import torch

    torch.set_num_threads(args.threads)
    from analyzer.commands.demo import demo_specs
    from analyzer.cost import measure_cost
    from analyzer.naming import short_names
    from analyzer.sources import load_backbone

    specs = demo_specs()
    names = short_names(specs)
    runs = []
    for _ in range(args.runs):
        runs.append(
            {s: measure_cost(load_backbone(s, device="cpu"), batch_size=args.batch_size) for s in specs}
        )
    first = runs[0]
    print(
        f"device: {first[specs[0]].device}; batch size {args.batch_size}; latency: batch 1, median of "
        f"{first[specs[0]].latency_repeats} (IQR)"
    )
    print(
        f"{'backbone':<24s} {'params':>8s} {'MFLOPs':>8s} {'weights MiB':>11s} {'peak MiB':>9s} "
        f"{'latency ms':>11s} {'IQR':>7s} {'img/s':>7s}"
    )
    for s in specs:
        c = first[s]
        print(
            f"{names[s]:<24s} {c.params:>8d} {c.flops / 1e6:>8.1f} {c.weights_mb:>11.2f} {c.peak_memory_mb:>9.2f} "
            f"{c.latency_ms:>11.3f} {c.latency_iqr_ms:>7.3f} {c.throughput:>7.0f}"
        )
    if len(runs) < 2:
        return 0
    print()
    print(f"{'backbone':<24s} {'run 1 ms (IQR)':>16s} {'run 2 ms (IQR)':>16s} {'change':>8s}")
    changes = []
    for s in specs:
        a, b = runs[0][s], runs[1][s]
        for field in ("params", "flops", "weights_mb", "peak_memory_mb"):
            assert getattr(a, field) == getattr(b, field), (s, field)
        change = b.latency_ms / a.latency_ms - 1
        changes.append(abs(change))
        print(
            f"{names[s]:<24s} {a.latency_ms:>8.3f} ({a.latency_iqr_ms:>5.3f}) {b.latency_ms:>8.3f} "
            f"({b.latency_iqr_ms:>5.3f}) {change:>+8.1%}"
        )
    print(
        f"median |change| {sorted(changes)[len(changes) // 2]:.1%}, largest {max(changes):.1%}; "
        "params, FLOPs, weights and peak memory equal in both runs"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
