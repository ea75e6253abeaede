"""``python -m analyzer demo``: rank seven real pretrained backbones on 1 000 notMNIST letters (issue 17).

The candidates and the target ship with the project (``assets/notmnist``, provenance and checksums in its README):
CIFAR-10 ResNet-20/32/44/56 and a tutorial net, two MNIST LeNet-5s (one adversarially trained), as TorchScript
files with fixed public weights. The demo scores every headline metric (LogME, kNN, NCTI, SFDA, TMI, PED and the
weight-spectrum alpha), measures ground truth with the linear probe (:mod:`analyzer.probe`), validates the ranking
against it and against the fine-tuned accuracy (read from the shipped ``assets/notmnist/truth.csv``, measured once by
``benchmarks/finetune_truth.py``: fine-tuning seven nets takes CPU-minutes, the demo seconds), writes every report
into a run directory and prints the ranking, the metrics' cards and records, the two validation tables and the line
that opens the dashboard. ``--zoo`` runs the older demo instead: the synthetic
candidate zoo (:mod:`analyzer.zoo`) on scikit-learn's digits.

Same digits on every machine: the weights are fixed files, and the whole run (extraction, scores, probe; the
weight-spectrum worker too) uses one BLAS and one torch thread, so no reduction order depends on the core count.
Everything is cached: a second run takes seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from analyzer.errors import EXIT_OK, EXIT_PARTIAL, AnalyzerError
from analyzer.limits import MAX_FOLDS, MAX_N_BOOTSTRAP, bounded_int

if TYPE_CHECKING:
    from analyzer.report_types import Validation
    from analyzer.result import RankingResult

NAME = "demo"
HELP = "rank seven real pretrained backbones on notMNIST, probe the ground truth and validate (--zoo: synthetic zoo)"

#: The shipped assets: seven TorchScript backbones and the 1 000-letter notMNIST target.
ASSETS = Path(__file__).resolve().parents[2] / "assets" / "notmnist"
DEMO_DATA = ASSETS / "target.npz"
#: The shipped ground truth of the seven nets on the whole target, both regimes (``model`` = the net's name).
SHIPPED_TRUTH = ASSETS / "truth.csv"
DEMO_MODELS: tuple[str, ...] = (
    "cifar10_resnet20",
    "cifar10_resnet32",
    "cifar10_resnet44",
    "cifar10_resnet56",
    "cifar10_tutorialnet",
    "mnist_lenet5_clntrained",
    "mnist_lenet5_advtrained",
)
#: The ``--zoo`` demo's target: 1 797 real 8×8 handwritten digits, upsampled to each model's input size.
ZOO_DATA = "sklearn:digits"


@dataclass
class DemoRun:
    """What a demo run produced: the run directory (reports), the result, the probe ground truth, timings."""

    run_dir: Path
    result: RankingResult
    truth: dict[str, float]
    names: dict[str, str]  # model spec -> short display name
    seconds: float
    stage_seconds: dict[str, float] = field(default_factory=dict)
    #: {model spec: fine-tuned accuracy} from the shipped truth (empty for the zoo or a subsampled target).
    finetune_truth: dict[str, float] = field(default_factory=dict)
    #: The validation block against ``finetune_truth`` (None without it); the report's own block is the probe's.
    finetune_validation: Validation | None = None


def demo_specs() -> list[str]:
    """The seven shipped candidates as model specs; a clear error when the assets are missing."""
    paths = [ASSETS / "models" / f"{name}.pt" for name in DEMO_MODELS]
    missing = [str(p) for p in [*paths, DEMO_DATA] if not p.is_file()]
    if missing:
        raise AnalyzerError(
            f"the demo's shipped assets are missing: {', '.join(missing)}",
            "run the demo from a full clone of the project (assets/notmnist is part of it), or use `demo --zoo`",
        )
    return [f"torchscript:{p}" for p in paths]


#: Read by OpenMP, OpenBLAS and MKL as each loads: a library first imported inside :func:`limited_threads`
#: (torch, faiss, scipy.linalg: a cached run never imports torch) starts with the limit.
THREAD_ENV = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@contextlib.contextmanager
def limited_threads(threads: int) -> Iterator[None]:
    """Run the block with ``threads`` BLAS/OpenMP and torch threads.

    Libraries loaded before the block are limited through threadpoolctl and ``torch.set_num_threads`` and
    restored after. Those first loaded inside it read the limit from the environment (set for the block,
    restored after) as they load, and keep it: importing torch up front only to limit it would cost a cached run
    most of its time.
    """
    from threadpoolctl import threadpool_limits

    saved = {name: os.environ.get(name) for name in THREAD_ENV}
    os.environ.update({name: str(threads) for name in THREAD_ENV})
    torch = sys.modules.get("torch")
    before = torch.get_num_threads() if torch is not None else None
    if torch is not None:
        torch.set_num_threads(threads)
    try:
        with threadpool_limits(limits=threads):
            yield
    finally:
        if torch is not None and before is not None:
            torch.set_num_threads(before)
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def run_demo(
    cache_dir: str | os.PathLike[str] | None = None,
    *,
    zoo: bool = False,
    budget: Any = "full",
    candidates: Sequence[Any] | None = None,
    max_per_class: int | None = None,
    folds: int = 5,
    n_bootstrap: int = 50,
    seed: int = 0,
    threads: int = 1,
    progress: bool = True,
    echo: Callable[[str], None] = print,
) -> DemoRun:
    """Run the whole demo and return where its reports are.

    ``zoo``: the synthetic zoo on digits instead of the shipped backbones on notMNIST (``budget``/``candidates``
    pick the zoo, see :func:`analyzer.zoo.build_zoo`). ``max_per_class`` subsamples the target (None: all);
    ``folds`` is the probe's cross-validation; ``n_bootstrap`` the ranking's resamples; ``threads`` the BLAS and
    torch threads (1: the same digits on every machine, and the fastest on a busy one).
    """
    from analyzer.commands._progress import StageBars
    from analyzer.naming import short_names
    from analyzer.paths import CacheLayout, resolve_cache_dir
    from analyzer.probe import probe_models, write_truth_rows
    from analyzer.ranking import Ranker
    from analyzer.reports import write_reports

    start = time.perf_counter()
    cache = resolve_cache_dir(cache_dir)
    stages: dict[str, float] = {}
    with limited_threads(threads):
        if zoo:
            from analyzer import zoo as zoo_lib

            echo(f"[demo] candidate zoo in {CacheLayout(cache).zoo}")
            built = zoo_lib.build_zoo(cache, budget=budget, candidates=candidates, progress=progress)
            specs, data, run_name = [b.spec for b in built], ZOO_DATA, "demo-digits"
            names = {b.spec: b.name for b in built}
            stages["zoo"] = time.perf_counter() - start
        else:
            specs, data, run_name = demo_specs(), str(DEMO_DATA), "demo-notmnist"
            names = short_names(specs)
        echo(f"[demo] ranking {len(specs)} candidates on {Path(data).name if not zoo else data}")
        bars = StageBars(specs, enabled=progress)
        ranker = Ranker(
            data,
            cache_dir=cache,
            max_per_class=max_per_class,
            seed=seed,
            num_workers=0,  # 32×32 images decode in microseconds: worker processes only add start-up
            progress=False,
            on_progress=bars.event,
        )
        try:
            result = ranker.run(specs, n_bootstrap=n_bootstrap, name=run_name)
        finally:
            bars.close()
        timings = result.timings or {}
        for key in ("features", "cost", "scoring", "spectrum", "bootstrap"):
            stages[key] = float(timings.get(f"{key}_seconds") or 0.0)
        echo(f"[demo] ground truth: {folds}-fold linear probe on the frozen features")
        t0 = time.perf_counter()
        probed = probe_models(ranker.dataset, specs, cache_dir=cache, folds=folds, seed=seed, progress=False)
        truth = {spec: row["accuracy"] for spec, row in probed.items()}
        stages["probe"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    finetuned = {} if zoo or max_per_class is not None else shipped_finetune_truth(specs)
    finetune_validation = None
    if finetuned:
        from analyzer.validation import validation_block

        finetune_validation = validation_block(result, finetuned)
    result = result.with_validation(truth)
    run_dir = CacheLayout(cache).new_run_dir(run_name)
    write_reports(result, run_dir, cache_dir=cache)
    rows = [{"model": m, "regime": "linear", "accuracy": a} for m, a in truth.items()]
    rows += [{"model": m, "regime": "finetune", "accuracy": a} for m, a in finetuned.items()]
    write_truth_rows(run_dir / "truth.csv", rows)
    stages["reports"] = time.perf_counter() - t0
    run = DemoRun(run_dir, result, truth, names, time.perf_counter() - start, stages)
    run.finetune_truth, run.finetune_validation = finetuned, finetune_validation
    return run


def shipped_finetune_truth(specs: Sequence[str], path: Path = SHIPPED_TRUTH) -> dict[str, float]:
    """{spec: fine-tuned accuracy} of the shipped nets from ``assets/notmnist/truth.csv`` (its ``model`` column is
    the net's file name, matched to each ``torchscript:.../<name>.pt`` spec); empty when the file is absent."""
    from analyzer.truth import load_ground_truth

    if not path.is_file():
        return {}
    by_name = load_ground_truth(path, regime="finetune")
    return {spec: by_name[Path(spec).stem] for spec in specs if Path(spec).stem in by_name}


def _fmt(value: Any, width: int = 8, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return f"{'-':>{width}s}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:>{width}d}"
    return f"{float(value):>{width}.{digits}f}"


def _metric_names(run: DemoRun) -> list[str]:
    return run.result.scored_metric_names()


def ranking_lines(run: DemoRun) -> list[str]:
    """The ranked table: rank, candidate, aggregate mean rank, each metric's score, probe accuracy (truth)."""
    metrics = _metric_names(run)
    in_agg = set(run.result.aggregate.metrics)
    show_source = any(row.source_accuracy is not None for row in run.result.ranking)
    head = f"{'rank':>4s}  {'candidate':24s} {'agg':>6s} "
    head += " ".join(f"{(m + ('*' if m in in_agg else ''))[:8]:>8s}" for m in metrics)
    head += f" {'src acc':>8s}" if show_source else ""
    lines = [head + f" {'probe':>8s}"]
    for row in run.result.ranking:
        line = f"{_fmt(row.rank, 4)}  {run.names.get(row.model, row.model)[:24]:24s} "
        line += f"{_fmt(row.aggregate_score, 6, 2)} " + " ".join(_fmt(row.scores.get(m)) for m in metrics)
        line += f" {_fmt(row.source_accuracy)}" if show_source else ""
        lines.append(line + f" {_fmt(run.truth.get(row.model))}")
    return lines


def metric_lines(run: DemoRun) -> list[str]:
    """Each metric's card: in the aggregate or beside it, direction, measured record, what it measures."""
    import metrics as metrics_lib
    from analyzer.metric_record import record_text

    in_agg = set(run.result.aggregate.metrics)
    entries = [e for e in run.result.metrics if e.kind != "baseline"]
    width = max(len("measured weighted tau"), *(len(record_text(e.name)) for e in entries))
    lines = [
        f"{'metric':8s} {'aggregate':9s} {'better':6s} {'measured weighted tau':{width}s} what it measures"
    ]
    for entry in entries:
        name = entry.name
        card = metrics_lib.info(name).summary
        better = "higher" if entry.higher_is_better else "lower"
        in_or_beside = "yes" if name in in_agg else "beside"
        lines.append(f"{name:8s} {in_or_beside:9s} {better:6s} {record_text(name):{width}s} {card}")
    return lines


def validation_lines(run: DemoRun, regime: str = "linear") -> list[str]:
    """A validation table: how well each metric (and the aggregate) predicts the probe accuracy (``regime``
    ``linear``, the report's own block) or the shipped fine-tuned accuracy (``finetune``; no rows without it)."""
    validation = run.finetune_validation if regime == "finetune" else run.result.validation
    rows = validation.rows if validation else []
    columns = ("weighted_tau", "kendall_tau", "spearman", "top1_regret", "top3_recall")
    lines = [f"{'metric':18s} " + " ".join(f"{c:>12s}" for c in columns)]
    for row in rows:
        lines.append(f"{row.metric[:18]:18s} " + " ".join(_fmt(row.statistic(c), 12) for c in columns))
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
        "--zoo", action="store_true", help="the synthetic zoo on sklearn digits instead of the real backbones"
    )
    parser.add_argument(
        "--budget",
        choices=("small", "full"),
        default="full",
        help="with --zoo: zoo size and training steps (default full)",
    )
    parser.add_argument(
        "--max-per-class",
        type=bounded_int("--max-per-class", 1, 10**9),
        default=None,
        help="subsample the target per class (default: all)",
    )
    # checked here, before any work (the probe refused --folds 1 only after 40 s of ranking)
    parser.add_argument(
        "--folds",
        type=bounded_int("--folds", 2, MAX_FOLDS),
        default=5,
        help=f"probe cross-validation folds, 2 to {MAX_FOLDS} (default 5)",
    )
    parser.add_argument(
        "--bootstrap",
        type=bounded_int("--bootstrap", 0, MAX_N_BOOTSTRAP, "resamples; 0 = no bootstrap"),
        default=50,
        help=f"bootstrap resamples of the ranking, 0 to {MAX_N_BOOTSTRAP} (default 50)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def run(args: argparse.Namespace) -> int:
    from analyzer.metric_record import aggregate_reason

    demo = run_demo(
        args.cache_dir,
        zoo=args.zoo,
        budget=args.budget,
        max_per_class=args.max_per_class,
        folds=args.folds,
        n_bootstrap=args.bootstrap,
        progress=not args.quiet,
    )
    result = demo.result
    label = "sklearn digits" if args.zoo else "notMNIST letters A-J"
    print()
    print(
        f"Ranking of {len(result.ranking)} backbones on {label} ({result.dataset.n_samples} images, "
        f"{result.dataset.n_classes} classes), best first. agg = mean rank over the * metrics (lower is better); "
        "probe = ground truth (5-fold linear-probe accuracy):"
    )
    print("\n".join(ranking_lines(demo)))
    print(demo.result.headline())
    few = demo.result.few_per_class_note()
    if few:
        print(few)
    print()
    print(
        "Metrics (weighted tau: how well each ranked the linear-probe accuracy on the targets measured so far; "
        "<target>/ft: the fine-tuned accuracy):"
    )
    print("\n".join(metric_lines(demo)))
    print(f"Aggregate = {', '.join(result.aggregate.metrics)}: {aggregate_reason(result.aggregate.metrics)}.")
    print()
    print(
        "Validation against the linear-probe accuracy (probe column; tau: higher is better; top1_regret: lower is "
        "better):"
    )
    print("\n".join(validation_lines(demo)))
    print()
    if demo.finetune_validation is not None:
        print(
            "Validation against the fine-tuned accuracy (whole backbone trained; read from the shipped "
            f"{SHIPPED_TRUTH.relative_to(ASSETS.parents[1])}, measured by benchmarks/finetune_truth.py):"
        )
        print("\n".join(validation_lines(demo, "finetune")))
    else:
        if args.zoo:
            why = "the zoo has no shipped fine-tuned truth"
        elif args.max_per_class is not None:
            why = "the shipped truth is for the whole target, not a subsample"
        else:
            why = f"no fine-tuned truth is shipped in {SHIPPED_TRUTH.relative_to(ASSETS.parents[1])}"
        print(
            f"Validation against the fine-tuned accuracy: not shown ({why}; measure it with probe --regime finetune)."
        )
    for failure in result.failed:
        where = failure.model if failure.metric is None else f"{failure.model} / {failure.metric}"
        print(f"failed: {where}: {failure.error}")
    for item in result.skipped:
        print(f"skipped {item.metric} for {demo.names.get(item.model, item.model)}: {item.reason}")
    print()
    stages = ", ".join(f"{k} {v:.1f}" for k, v in demo.stage_seconds.items())
    print(f"Time: {demo.seconds:.1f} s ({stages} s)")
    print(f"Reports: {demo.run_dir}  (report.json, ranking.csv, report.md, report.html, truth.csv)")
    print("Open the dashboard on this run:")
    print(f"  {dashboard_command(demo)}")
    return EXIT_PARTIAL if result.failed else EXIT_OK  # the README's exit-code rule
