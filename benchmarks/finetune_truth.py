"""Ground truth of the seven shipped nets in both regimes: the linear probe and the fine-tune (``probe --regime``).

    .venv/bin/python benchmarks/finetune_truth.py                       # notMNIST -> assets/notmnist/truth.csv
    .venv/bin/python benchmarks/finetune_truth.py --target cifar10 --out /tmp/truth-cifar10.csv
    .venv/bin/python benchmarks/finetune_truth.py --target notmnist --max-per-class 10 --out /tmp/truth-notmnist@10.csv

For every net of :data:`analyzer.commands.demo.DEMO_MODELS` it runs :func:`analyzer.probe.probe_models` in the
``linear`` regime (5-fold linear probe, seed 0) and the ``finetune`` regime (:data:`analyzer.finetune.PROTOCOL`,
seed 0), through the cache (``--cache-dir``): every fine-tuning run is a record there, so an interrupted run resumes
and a finished one is re-read in seconds. It writes ``model,regime,accuracy,sem`` (``model`` = the net's name) and
prints a table with each net's accuracies and the minutes its fine-tuning runs took (as recorded when they ran; the
machine's load at that time inflates them).

Targets: ``notmnist`` (the shipped ``assets/notmnist/target.npz``; the default output is the shipped
``assets/notmnist/truth.csv``) and ``cifar10`` (``<shared>/benchmarks/cifar10/target.npz``, 600 CIFAR-10 test
images; its truth is written to ``--out`` only, never into the repository).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analyzer.commands.demo import ASSETS, DEMO_MODELS, SHIPPED_TRUTH, demo_specs  # noqa: E402
from analyzer.finetune import finetune_protocol_text  # noqa: E402
from analyzer.probe import REGIMES, probe_models, write_truth_rows  # noqa: E402


def shared_dir() -> Path:
    """``../shared`` beside the repository (a worktree's checkout may sit one level deeper: then ``/work/shared``)."""
    for candidate in (ROOT.parent / "shared", ROOT.parents[1] / "shared"):
        if candidate.is_dir():
            return candidate
    return ROOT.parent / "shared"


def target_data(name: str, shared: Path) -> Path:
    """The target's ``target.npz``: the shipped notMNIST letters, or CIFAR-10 from the shared benchmarks."""
    return ASSETS / "target.npz" if name == "notmnist" else shared / "benchmarks" / name / "target.npz"


def measure(
    data: Path, *, cache_dir: str | None, max_per_class: int | None, progress: bool
) -> list[dict[str, object]]:
    """Both regimes' rows for the seven nets on ``data``: ``model`` (net name), ``regime``, ``accuracy``, ``sem``,
    and ``minutes`` (fine-tune: the recorded training time; linear: this call's wall time)."""
    rows: list[dict[str, object]] = []
    specs = demo_specs()
    for regime in REGIMES:
        for spec in specs:
            t0 = time.perf_counter()
            row = probe_models(
                str(data),
                [spec],
                cache_dir=cache_dir,
                regime=regime,
                max_per_class=max_per_class,
                progress=progress,
            )[spec]
            seconds = float(row.get("train_seconds") or (time.perf_counter() - t0))
            rows.append(
                {
                    "model": Path(spec).stem,
                    "regime": regime,
                    "accuracy": row["accuracy"],
                    "sem": row["sem"],
                    "minutes": seconds / 60.0,
                    "learning_rates": row.get("learning_rates", ""),
                }
            )
            print(f"[{regime}] {Path(spec).stem}: {row['accuracy']:.4f} ± {row['sem']:.4f}", file=sys.stderr)
    return rows


def table_markdown(rows: Sequence[dict[str, object]]) -> str:
    """One line per net: linear and fine-tuned accuracy ± standard error, fine-tuning minutes, chosen rates."""
    by = {(r["model"], r["regime"]): r for r in rows}
    lines = [
        "| net | linear probe | fine-tuned | fine-tune minutes | learning rate per split |",
        "|---|---|---|---|---|",
    ]
    total = 0.0
    for net in DEMO_MODELS:
        lin, ft = by[(net, "linear")], by[(net, "finetune")]
        total += float(ft["minutes"])  # type: ignore[arg-type]
        rates = ", ".join(f"{float(v):g}" for v in ft["learning_rates"])  # type: ignore[union-attr]
        lines.append(
            f"| {net} | {lin['accuracy']:.3f} ± {lin['sem']:.3f} | {ft['accuracy']:.3f} ± {ft['sem']:.3f} "
            f"| {float(ft['minutes']):.1f} | {rates} |"  # type: ignore[arg-type]
        )
    lines.append(f"| **total** | | | {total:.1f} | |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", choices=("notmnist", "cifar10"), default="notmnist")
    parser.add_argument("--max-per-class", type=int, default=None, help="subsample the target (default: all)")
    parser.add_argument(
        "--cache-dir", default=None, help="cache root (default: $ANALYZER_CACHE_DIR or data_cache)"
    )
    parser.add_argument("--shared", default=None, help="the shared benchmarks folder (default: ../shared)")
    parser.add_argument(
        "--out",
        default=None,
        help="truth CSV to write (default: assets/notmnist/truth.csv for the whole notMNIST)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    args = parser.parse_args(argv)
    shipped = args.target == "notmnist" and args.max_per_class is None
    if args.out is None and not shipped:
        parser.error(
            "--out is required for this target: only the whole notMNIST truth is shipped in the repository"
        )
    data = target_data(args.target, Path(args.shared) if args.shared else shared_dir())
    if not data.is_file():
        print(
            f"{data} is absent (../shared is not beside the repository); pass --shared DIR", file=sys.stderr
        )
        return 2
    rows = measure(data, cache_dir=args.cache_dir, max_per_class=args.max_per_class, progress=not args.quiet)
    out = Path(args.out) if args.out else SHIPPED_TRUTH
    write_truth_rows(out, rows)
    size = f", {args.max_per_class} per class" if args.max_per_class else ""
    print(f"## Ground truth on {args.target}{size}: both regimes\n")
    print(table_markdown(rows))
    print(f"\nfine-tuning protocol: {finetune_protocol_text()}")
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
