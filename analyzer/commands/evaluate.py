"""``python -m analyzer evaluate``: validate a saved ranking against ground-truth accuracies.

Prints, for every metric, baseline and the aggregate: weighted Kendall's tau (hyperbolic weights, as the
transferability papers compute it), Kendall's tau, Spearman, Pearson, top-1 regret and top-3 recall; then adds
them to the run's reports (rewritten atomically).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from pathlib import Path

from analyzer.errors import OutputError

NAME = "evaluate"
HELP = "compare a ranking's metrics with ground-truth accuracies (weighted tau, Kendall, regret, ...)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", required=True, help="a run's report.json (or its directory)")
    parser.add_argument(
        "--ground-truth", required=True, help="CSV with columns model,accuracy[,dataset][,regime]"
    )
    parser.add_argument(
        "--regime",
        choices=("linear", "finetune"),
        default=None,
        help="which regime's rows to use when the CSV has a regime column with several (linear probe or fine-tuned)",
    )
    parser.add_argument(
        "--dataset", default=None, help="which dataset's rows to use when the CSV has several"
    )
    parser.add_argument("--no-write", action="store_true", help="print only; leave the reports unchanged")
    parser.add_argument(
        "--out",
        default=None,
        help="write the validated reports into this directory instead of the run's own",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace report files the analyzer did not write (or that changed)",
    )


def run(args: argparse.Namespace) -> int:
    from analyzer.commands.rank import _print_table
    from analyzer.inputs import check_output_dir
    from analyzer.outputs import check_not_empty, check_overwrite
    from analyzer.reports import WRITERS, save
    from analyzer.reports._format import validation_note, validation_rows
    from analyzer.result import RankingResult
    from analyzer.truth import load_ground_truth

    check_not_empty(args.out, flag="--out")
    result = RankingResult.load(args.report)
    if args.out is not None:
        result = dataclasses.replace(result, run_dir=check_output_dir(args.out, flag="--out"))
    if not args.no_write and result.run_dir is not None:
        flag = "--out" if args.out is not None else "--report's run directory"
        check_overwrite([result.run_dir / name for name in WRITERS], flag=flag, force=args.force)
    if (
        args.out is None
        and not args.no_write
        and result.run_dir is not None
        and not os.access(result.run_dir, os.W_OK | os.X_OK)
    ):
        raise OutputError(
            f"the run directory {result.run_dir} is not writable, so the validation cannot be added to its reports",
            "pass --no-write to print the statistics only, or copy the run directory somewhere writable",
        )
    dataset = args.dataset or result.dataset.name or Path(result.dataset.spec).name
    truth = load_ground_truth(args.ground_truth, dataset=dataset, regime=args.regime)
    result = result.with_validation(truth)
    if args.regime:
        print(f"ground truth: regime {args.regime} of {args.ground_truth}")
    _print_table(*validation_rows(result))
    note = validation_note(result)
    if note:
        print(note)
    missing = [m for m in result.models if m not in truth]
    if missing:
        print(f"\nno ground truth for: {', '.join(missing)} (left out of the statistics)")
    if not args.no_write and result.run_dir is not None:  # load() sets it
        save(result, result.run_dir)
        print(f"\nvalidation added to the reports in {result.run_dir}/")
    return 0
