"""``python -m analyzer probe``: ground-truth accuracy of each candidate (``--regime linear``: a linear probe on
frozen features, the default; ``--regime finetune``: the whole backbone fine-tuned, :mod:`analyzer.finetune`).

Exit codes: 0 every candidate probed, 3 truth.csv written for the candidates that worked but some failed
(listed), 2 bad inputs (checked before any extraction), a candidate that cannot be fine-tuned, or every candidate
failed, 1 an internal failure.
"""

from __future__ import annotations

import argparse
import sys

from analyzer.commands._dataset import print_dataset_notes
from analyzer.commands._options import (
    add_cache_dir,
    add_data_and_models,
    add_dataset_options,
    add_executor,
    add_subsample,
    dataset_options,
    executor_settings,
    parse_models,
)
from analyzer.errors import EXIT_OK, EXIT_PARTIAL, describe, every_candidate_failed
from analyzer.limits import MAX_FOLDS, bounded_int
from analyzer.probe import REGIMES

NAME = "probe"
HELP = "measure each candidate's real accuracy on a dataset (linear probe, or --regime finetune) and write truth.csv"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_and_models(parser)
    parser.add_argument(
        "--out", default="truth.csv", help="where to write model,regime,accuracy,sem (default truth.csv)"
    )
    parser.add_argument(
        "--regime",
        choices=REGIMES,
        default="linear",
        help="linear: cross-validated linear probe on frozen features (default, seconds); finetune: the whole "
        "backbone and a new head trained under one fixed protocol (minutes per model on a CPU; see README)",
    )
    parser.add_argument(
        "--force", action="store_true", help="let --out replace a file the analyzer did not write"
    )
    parser.add_argument(
        "--folds",
        type=bounded_int("--folds", 2, MAX_FOLDS),
        default=5,
        help=f"linear regime: stratified cross-validation folds, 2 to {MAX_FOLDS} (default 5)",
    )
    add_subsample(
        parser, seed_help="seed of the subsample, the fold assignment and the fine-tune (default 0)"
    )
    add_dataset_options(parser)
    add_cache_dir(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_executor(parser)


def run(args: argparse.Namespace) -> int:
    from analyzer.config import check_executor_settings
    from analyzer.datasets import open_dataset
    from analyzer.finetune import check_trainable_specs
    from analyzer.inputs import check_output_file
    from analyzer.outputs import check_not_empty, check_overwrite
    from analyzer.paths import CacheLayout, resolve_cache_dir
    from analyzer.probe import check_probe_dataset, probe_models, write_truth_csv
    from analyzer.sources import parse_spec

    models = parse_models(args.models)
    for spec in models:
        parse_spec(spec)
    if args.regime == "finetune":
        check_trainable_specs(models)
    settings = check_executor_settings(executor_settings(args))  # --ray-address without ray is refused
    check_not_empty(args.out, flag="--out")
    check_output_file(args.out, flag="--out")
    check_overwrite([args.out], flag="--out", force=args.force)
    cache_dir = resolve_cache_dir(args.cache_dir)
    dataset = open_dataset(args.data, **dataset_options(args), check_cache=CacheLayout(cache_dir).checks)
    print_dataset_notes(dataset, quiet=args.quiet)
    check_probe_dataset(dataset, folds=args.folds, regime=args.regime)
    executor = None
    if settings.get("kind", "local") != "local":
        from analyzer.executors import open_executor

        executor = open_executor(settings, [cache_dir, args.data])
    failures: dict[str, BaseException] = {}
    try:
        results = probe_models(
            dataset,
            models,
            cache_dir=cache_dir,
            folds=args.folds,
            seed=args.seed,
            regime=args.regime,
            progress=not args.quiet,
            failures=failures,
            executor=executor,
        )
    finally:
        if executor is not None:
            executor.close()
    if not results:
        raise every_candidate_failed(failures)
    path = write_truth_csv(args.out, results)
    print(f"{args.regime + ' acc':>13s} {'sem':>7s} {'seconds':>8s}  model")
    for model, row in sorted(results.items(), key=lambda kv: -kv[1]["accuracy"]):
        print(f"{row['accuracy']:13.4f} {row['sem']:7.4f} {row['seconds']:8.1f}  {model}")
    if args.regime == "finetune":
        from analyzer.finetune import finetune_protocol_text

        print(f"protocol: {finetune_protocol_text()}")
    print(
        f"wrote {path} (regime {args.regime}); check a ranking against it with: "
        f"python -m analyzer evaluate --ground-truth {path} --regime {args.regime}"
    )
    if failures:
        for spec, exc in failures.items():
            print(f"FAILED {spec}: {describe(exc)}", file=sys.stderr)
        return EXIT_PARTIAL
    return EXIT_OK
