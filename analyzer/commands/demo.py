"""``python -m analyzer demo``: the offline end-to-end demo (issue 7).

Builds (or reuses) the candidate zoo, ranks it on scikit-learn's digits with the default metrics plus the
weight-spectrum alpha, measures ground truth with the linear probe, validates the ranking against it
(weighted Kendall's tau, top-1 regret per metric and for the aggregate), writes every report into a run
directory and prints the line that opens the dashboard on it. Everything is cached: a second run takes seconds.
"""

from __future__ import annotations

import argparse
import math
import os
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NAME = "demo"
HELP = "rank an offline pool of backbones on sklearn digits and validate the ranking against probe accuracy"

#: The bundled target: 1 797 real 8×8 handwritten digits, upsampled by the extractor to each model's input size.
DEMO_DATA = "sklearn:digits"


@dataclass
class DemoRun:
    """What a demo run produced: the run directory (reports), the result and the probe ground truth."""

    run_dir: Path
    result: Any  # analyzer.result.RankingResult
    truth: dict[str, float]
    names: dict[str, str]  # model spec -> short zoo name, for display
    seconds: float


def run_demo(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    budget: Any = "full",
    candidates: Sequence[Any] | None = None,
    max_per_class: int | None = None,
    folds: int = 5,
    n_bootstrap: int = 50,
    seed: int = 0,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> DemoRun:
    """Run the whole demo and return where its reports are.

    ``budget``/``candidates`` pick the zoo (see :func:`analyzer.zoo.build_zoo`); ``max_per_class`` subsamples
    digits (None: all 1 797 images); ``folds`` is the probe's cross-validation; ``n_bootstrap`` the ranking's
    resamples.
    """
    from analyzer import zoo
    from analyzer.paths import CacheLayout, resolve_cache_dir
    from analyzer.probe import probe_models, write_truth_csv
    from analyzer.ranking import Ranker
    from analyzer.reports import write_reports

    start = time.perf_counter()
    cache = resolve_cache_dir(cache_dir)
    echo(f"[demo] 1/4 candidate zoo in {CacheLayout(cache).zoo}")
    built = zoo.build_zoo(cache, budget=budget, candidates=candidates, progress=progress)
    specs = [b.spec for b in built]
    names = {b.spec: b.name for b in built}

    echo(f"[demo] 2/4 ranking {len(specs)} candidates on {DEMO_DATA} (default metrics + alpha)")
    ranker = Ranker(DEMO_DATA, cache_dir=cache, max_per_class=max_per_class, seed=seed, progress=progress)
    result = ranker.run(specs, n_bootstrap=n_bootstrap, name="demo-digits")

    echo(f"[demo] 3/4 ground truth: {folds}-fold linear probe on the frozen features")
    probed = probe_models(ranker.dataset, specs, cache_dir=cache, folds=folds, seed=seed, progress=progress)
    truth = {spec: row["accuracy"] for spec, row in probed.items()}

    echo("[demo] 4/4 validation and reports")
    result.validate(truth)
    run_dir = CacheLayout(cache).new_run_dir("demo-digits")
    write_reports(result, run_dir)
    write_truth_csv(run_dir / "truth.csv", truth)
    return DemoRun(run_dir, result, truth, names, time.perf_counter() - start)


def _fmt(value: Any, width: int = 8, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return f"{'-':>{width}s}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:>{width}d}"
    return f"{float(value):>{width}.{digits}f}"


def ranking_lines(run: DemoRun) -> list[str]:
    """The ranked table: rank, candidate, aggregate mean rank, each metric's score, probe accuracy."""
    report = run.result.to_dict()
    metrics = [m["name"] for m in report["metrics"] if m.get("kind") != "baseline"]
    head = f"{'rank':>4s}  {'candidate':20s} {'agg':>6s} " + " ".join(f"{m[:8]:>8s}" for m in metrics)
    head += f" {'src acc':>8s} {'probe':>8s}"
    lines = [head]
    for row in report["ranking"]:
        scores = row.get("scores", {})
        line = f"{row['rank']:>4d}  {run.names.get(row['model'], row['model'])[:20]:20s} "
        line += f"{_fmt(row.get('aggregate_score'), 6, 2)} " + " ".join(_fmt(scores.get(m)) for m in metrics)
        line += f" {_fmt(row.get('source_accuracy'))} {_fmt(run.truth.get(row['model']))}"
        lines.append(line)
    return lines


def validation_lines(run: DemoRun) -> list[str]:
    """The validation table: how well each metric (and the aggregate) predicts the probe accuracy."""
    rows = (run.result.to_dict().get("validation") or {}).get("rows", [])
    columns = ("weighted_tau", "kendall_tau", "spearman", "top1_regret", "top3_recall")
    lines = [f"{'metric':18s} " + " ".join(f"{c:>12s}" for c in columns)]
    for row in rows:
        lines.append(f"{row['metric'][:18]:18s} " + " ".join(_fmt(row.get(c), 12) for c in columns))
    return lines


def dashboard_command(run: DemoRun) -> str:
    """The exact line that opens the dashboard on this run (it shows the newest run of the cache first)."""
    cache = run.run_dir.parent.parent
    return f"ANALYZER_CACHE_DIR={shlex.quote(str(cache))} .venv/bin/streamlit run app.py"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cache-dir", default=None, help="cache directory (default: $ANALYZER_CACHE_DIR or data_cache/)"
    )
    parser.add_argument(
        "--budget",
        choices=("small", "full"),
        default="full",
        help="zoo size and training steps (default full)",
    )
    parser.add_argument(
        "--max-per-class", type=int, default=None, help="subsample digits per class (default: all)"
    )
    parser.add_argument("--folds", type=int, default=5, help="probe cross-validation folds (default 5)")
    parser.add_argument(
        "--bootstrap", type=int, default=50, help="bootstrap resamples of the ranking (default 50)"
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    demo = run_demo(
        args.cache_dir,
        budget=args.budget,
        max_per_class=args.max_per_class,
        folds=args.folds,
        n_bootstrap=args.bootstrap,
        progress=not args.quiet,
    )
    print()
    print("Ranking (best first; agg = mean rank over the aggregate metrics, lower is better; probe = truth):")
    print("\n".join(ranking_lines(demo)))
    print()
    print("Validation against the probe accuracy (tau: higher is better; top1_regret: lower is better):")
    print("\n".join(validation_lines(demo)))
    failed = demo.result.to_dict().get("failed") or []
    for item in failed:
        print(f"failed: {item['model']}: {item['error']}")
    print()
    print(
        f"Reports ({demo.seconds:.0f} s): {demo.run_dir}  (report.json, ranking.csv, report.md, report.html, truth.csv)"
    )
    print("Open the dashboard on this run:")
    print(f"  {dashboard_command(demo)}")
    return 0
