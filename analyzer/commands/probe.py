"""``python -m analyzer probe``: ground-truth accuracy of each candidate (linear probe, optional fine-tune)."""

from __future__ import annotations

import argparse

from analyzer.commands._options import (
    add_cache_dir,
    add_data_and_models,
    add_executor,
    add_subsample,
    executor_settings,
    parse_models,
)

NAME = "probe"
HELP = (
    "measure each candidate's real accuracy on a dataset (cross-validated linear probe) and write truth.csv"
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_data_and_models(parser)
    parser.add_argument(
        "--out", default="truth.csv", help="where to write model,accuracy (default truth.csv)"
    )
    parser.add_argument("--folds", type=int, default=5, help="stratified cross-validation folds (default 5)")
    add_subsample(
        parser, seed_help="seed of the subsample, the fold assignment and the fine-tune (default 0)"
    )
    parser.add_argument(
        "--finetune",
        action="store_true",
        help="also fine-tune each backbone briefly (fixed budget) and write its held-out accuracy as the truth",
    )
    parser.add_argument(
        "--finetune-steps", type=int, default=200, help="fine-tune optimiser steps (default 200)"
    )
    add_cache_dir(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    add_executor(parser)


def run(args: argparse.Namespace) -> int:
    from analyzer.probe import probe_models, write_truth_csv

    models = parse_models(args.models)
    settings = executor_settings(args)
    executor = None
    if settings.get("kind", "local") != "local":
        from analyzer.executors import open_executor
        from analyzer.paths import resolve_cache_dir

        executor = open_executor(settings, [resolve_cache_dir(args.cache_dir), args.data])
    try:
        results = probe_models(
            args.data,
            models,
            cache_dir=args.cache_dir,
            folds=args.folds,
            seed=args.seed,
            finetune=args.finetune,
            finetune_steps=args.finetune_steps,
            max_per_class=args.max_per_class,
            progress=not args.quiet,
            executor=executor,
        )
    finally:
        if executor is not None:
            executor.close()
    key = "finetune_accuracy" if args.finetune else "accuracy"
    path = write_truth_csv(args.out, {model: row[key] for model, row in results.items()})
    header = f"{'probe acc':>9s}" + (f" {'finetune':>9s}" if args.finetune else "")
    print(f"{header} {'seconds':>8s}  model")
    for model, row in sorted(results.items(), key=lambda kv: -kv[1][key]):
        ft = f" {row['finetune_accuracy']:9.4f}" if args.finetune else ""
        print(f"{row['accuracy']:9.4f}{ft} {row['seconds']:8.1f}  {model}")
    print(
        f"wrote {path} ({key}); check a ranking against it with: python -m analyzer evaluate --ground-truth {path}"
    )
    return 0
