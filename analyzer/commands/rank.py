"""``python -m analyzer rank``: extract, score and rank candidate backbones for a dataset; write the reports.

Exit codes: 0 every candidate ranked, 3 ranked and the reports written but some candidates failed (listed, with
the reason, in the summary and the report), 2 bad arguments or inputs, or every candidate failed (the message
says what to fix; nothing is written), 1 an internal failure. Every input is checked before the first
extraction: the config, the model prefixes, ``--device``, the cache dir, ``--out``, the dataset (at least two
classes) and the ``--ground-truth`` file. Interrupt it at any time: features, scores and spectra that finished
are cached, so the same command resumes without recomputing them.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from analyzer.budget import PARETO_AXES
from analyzer.commands._dataset import print_dataset_notes
from analyzer.commands._options import (
    add_cache_dir,
    add_data_and_models,
    add_dataset_options,
    add_device,
    add_executor,
    add_subsample,
    executor_settings,
    parse_models,
)
from analyzer.config import load_config_file, resolve_config, split_list
from analyzer.errors import EXIT_OK, EXIT_PARTIAL, ConfigError

if TYPE_CHECKING:
    from analyzer.config import RankConfig
    from analyzer.executors import Executor
    from analyzer.result import RankingResult

NAME = "rank"
HELP = "rank candidate backbones for a dataset by transferability metrics, with bootstrap and baselines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    # no default here may override the --config file: a flag left out is None
    add_data_and_models(parser, required=False)
    parser.add_argument(
        "--metrics",
        default=None,
        help="comma-separated metrics (default: logme,knn,ncti,sfda,tmi,ped and alpha; the aggregate takes logme,knn,ncti,sfda)",
    )
    parser.add_argument(
        "--aggregate",
        default=None,
        help="metrics averaged into the aggregate rank (default: the label-based ones except tmi and ped, which are shown beside it)",
    )
    parser.add_argument(
        "--out", default=None, help="output directory (default: <cache>/runs/<timestamp>-<name>/)"
    )
    parser.add_argument(
        "--force", action="store_true", help="let --out replace report files the analyzer did not write there"
    )
    parser.add_argument("--name", default=None, help="run name (default: the dataset's name)")
    add_cache_dir(parser)
    parser.add_argument(
        "--config", default=None, help="TOML file with the same keys as these flags; flags override it"
    )
    add_device(parser, batch_size_default=None)
    add_subsample(parser, seed_default=None, seed_help="seed for subsampling and the bootstrap (default 0)")
    add_dataset_options(parser, from_config=True)
    parser.add_argument(
        "--n-bootstrap",
        type=int,
        default=None,
        help="bootstrap resamples for p_best and rank intervals (default 200)",
    )
    parser.add_argument(
        "--bootstrap-fraction",
        type=float,
        default=None,
        help="share of each class per resample (default 0.8)",
    )
    parser.add_argument(
        "--bootstrap-early-stop",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="score the resamples in rounds of 60 and stop once the pick is settled: every P(best) on a known "
        "side of the 5 %% tie line and the leader's within 0.02; the report records the resamples used (default: "
        "on; --no-bootstrap-early-stop scores all of them)",
    )
    parser.add_argument(
        "--ground-truth", default=None, help="CSV model,accuracy[,dataset]: validate the ranking"
    )
    parser.add_argument(
        "--spectrum-timeout", type=float, default=None, help="seconds per weightwatcher run (default 600)"
    )
    add_executor(parser)
    add_budget(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def add_budget(parser: argparse.ArgumentParser) -> None:
    """The cost budget and the Pareto axis (analyzer.budget): the pick is the best candidate within the budget."""
    limits = (
        ("--max-params", int, "parameters"),
        ("--max-flops", int, "FLOPs per image (FlopCounterMode: 2 per multiply-add)"),
        ("--max-latency-ms", float, "batch-1 latency in ms on the run's device"),
        ("--max-memory-mb", float, "peak memory of a forward pass at the batch size, in MiB"),
    )
    for flag, kind, what in limits:
        parser.add_argument(flag, type=kind, default=None, help=f"budget: at most this many {what}")
    parser.add_argument(
        "--pareto-axis",
        choices=PARETO_AXES,
        default=None,
        help="the cost the Pareto front of (mean rank, cost) uses (default latency_ms)",
    )


def _models(value: str | None) -> list[str] | None:
    if value is None:
        return None
    return parse_models(value)


def run(args: argparse.Namespace) -> int:
    from analyzer.executors import open_executor
    from analyzer.inputs import check_output_dir
    from analyzer.outputs import check_not_empty, check_overwrite
    from analyzer.paths import resolve_cache_dir
    from analyzer.reports import WRITERS

    file_values = load_config_file(args.config) if args.config else {}
    flags = {
        "data": args.data,
        "models": _models(args.models),
        "metrics": split_list(args.metrics),
        "aggregate": split_list(args.aggregate),
        "out": args.out,
        "name": args.name,
        "cache_dir": args.cache_dir,
        "device": args.device,
        "batch_size": args.batch_size,
        "max_per_class": args.max_per_class,
        "split": args.split,
        "seed": args.seed,
        "n_bootstrap": args.n_bootstrap,
        "bootstrap_fraction": args.bootstrap_fraction,
        "bootstrap_early_stop": args.bootstrap_early_stop,
        "ground_truth": args.ground_truth,
        "spectrum_timeout": args.spectrum_timeout,
        "skip_bad": args.skip_bad,
        "image_column": args.image_column,
        "label_column": args.label_column,
        "executor": executor_settings(args) or None,
        "max_params": args.max_params,
        "max_flops": args.max_flops,
        "max_latency_ms": args.max_latency_ms,
        "max_memory_mb": args.max_memory_mb,
        "pareto_axis": args.pareto_axis,
    }
    config = resolve_config(file_values, flags)
    cache_dir = resolve_cache_dir(config.cache_dir)
    check_not_empty(args.out, flag="--out")
    if config.out:
        check_output_dir(config.out, flag="--out")
        check_overwrite([Path(config.out) / name for name in WRITERS], flag="--out", force=args.force)
    # A Ray executor joins its cluster and sends its node check first, without waiting: the nodes start workers and
    # import the stages' libraries while this process imports its own and checks the other inputs (3 s of a
    # 30 s ranking on a 2-core machine, benchmarks/scale_bench.py). No task is sent before the check has passed.
    executor = open_executor(config.executor, [cache_dir, config.data], wait=False)
    try:
        return _rank(args, config, cache_dir, executor)
    finally:
        executor.close()


def _rank(args: argparse.Namespace, config: RankConfig, cache_dir: Path, executor: Executor) -> int:
    from analyzer.commands._progress import StageBars
    from analyzer.datasets import open_dataset, require_classes
    from analyzer.device import resolve_device
    from analyzer.paths import CacheLayout
    from analyzer.ranking import Ranker, check_metric_names
    from analyzer.reports import save
    from analyzer.truth import check_truth_covers, load_ground_truth

    # Check every name before any expensive work: a typo costs nothing.
    if config.metrics is not None:
        check_metric_names(config.metrics)
    from analyzer.sources import parse_spec

    _check_metric_params(config.metric_params)
    for spec in config.models:
        parse_spec(spec)
    resolve_device(config.device)
    dataset = open_dataset(
        str(config.data),
        max_per_class=config.max_per_class,
        seed=config.seed,
        split=config.split,
        skip_bad=config.skip_bad,
        image_column=config.image_column,
        label_column=config.label_column,
        check_cache=CacheLayout(cache_dir).checks,
    )
    print_dataset_notes(dataset, quiet=args.quiet)
    require_classes(dataset, purpose="ranking")
    truth = None
    if config.ground_truth:
        truth = load_ground_truth(config.ground_truth, dataset=str(dataset.name or ""))
        check_truth_covers(truth, config.models, config.ground_truth)

    bars = StageBars(config.models, enabled=not args.quiet)
    try:
        ranker = Ranker(
            dataset,
            cache_dir=cache_dir,
            device=config.device,
            batch_size=config.batch_size,
            seed=config.seed,
            progress=False,  # one bar per stage (StageBars) instead of a line per unit of work
            spectrum_timeout=config.spectrum_timeout,
            on_progress=bars.event,
            executor=executor,
        )
        name = config.name or str(dataset.name or Path(str(config.data)).name or "run")
        recorded = config.to_dict()
        recorded["cache_dir"] = str(cache_dir)
        result = ranker.run(
            config.models,
            config.metrics,
            ground_truth=truth,
            n_bootstrap=config.n_bootstrap,
            bootstrap_fraction=config.bootstrap_fraction,
            bootstrap_early_stop=config.bootstrap_early_stop,
            aggregate=config.aggregate,
            metric_params=config.metric_params,
            name=name,
            config=recorded,
            budget=config.budget(),
            pareto_axis=config.pareto_axis,
        )
    finally:
        bars.close()
        executor.close()  # before writing the reports: a local Ray instance is not needed for that
    out = Path(config.out) if config.out else CacheLayout(cache_dir).new_run_dir(name)
    result = save(result, out, cache_dir=cache_dir)
    print_summary(result)
    print(f"\nreports written to {out}/ (report.html, report.md, ranking.csv, report.json)")
    return partial_exit(result, config.metrics)


def partial_exit(result: RankingResult, requested: list[str] | None) -> int:
    """The README's rule: 3 when a candidate failed or a metric the user asked for (``--metrics``) could be scored
    for no candidate (each said on stderr), else 0."""
    unscored = [m for m in requested or [] if all(r.scores.get(m) is None for r in result.ranking)]
    for metric in unscored:
        reasons = sorted(
            {s.reason for s in result.skipped if s.metric == metric}
            | {f.error for f in result.failed if f.metric == metric}
        )
        print(
            f"FAILED metric {metric}: requested but scored for no candidate"
            + (f" ({'; '.join(reasons)})" if reasons else ""),
            file=sys.stderr,
        )
    if result.failed:
        print(f"{len(result.failed)} candidate(s) failed (listed above and in the report)", file=sys.stderr)
    return EXIT_PARTIAL if result.failed or unscored else EXIT_OK


def _check_metric_params(metric_params: dict) -> None:
    """``[metric_params.NAME]`` tables name registered metrics and their own parameters (ConfigError otherwise)."""
    import metrics as metrics_lib
    from metrics._registry import split_params

    for name, params in metric_params.items():
        if name not in metrics_lib.available():
            raise ConfigError(
                f"metric_params names {name!r}, which is not a metric with parameters",
                f"use [metric_params.NAME] with one of: {', '.join(sorted(metrics_lib.available()))}",
            )
        try:
            split_params(metrics_lib.info(name), params)
        except ValueError as exc:  # the registry's check: an unknown parameter, with the valid ones
            raise ConfigError(str(exc), f"fix [metric_params.{name}] in the config file") from None


def print_summary(result: RankingResult) -> None:
    """Print the ranked table, the bootstrap statement, skipped/failed items and validation to stdout."""
    from analyzer.reports._format import candidate_rows, ranking_rows, validation_note, validation_rows

    header, rows = ranking_rows(result)
    _print_table(header, rows)
    header, candidates = candidate_rows(result)
    if candidates:
        print()
        _print_table(header, candidates)
    from analyzer import cost_view

    if cost_view.has_costs(result):
        print()
        _print_table(cost_view.TABLE_HEADER, cost_view.table_rows(result))
    display = result.display_names
    print(f"\n{result.headline()}")
    if cost_view.has_costs(result):
        print("\n".join(cost_view.budget_lines(result)))
    few = result.few_per_class_note()
    if few:
        print(few)
    if result.bootstrap:
        print(f"\n{result.bootstrap.statement}")
    for s in result.skipped:
        print(f"skipped {s.metric} for {display[s.model]}: {s.reason}")
    for f in result.failed:
        print(
            f"FAILED {f.model if f.metric is None else f'{f.model} / {f.metric}'}: {f.error}", file=sys.stderr
        )
    if result.validation:
        print("\nvalidation against ground truth:")
        _print_table(*validation_rows(result))
        note = validation_note(result)
        if note:
            print(note)


def _print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))
