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
from collections.abc import Sequence
from typing import TYPE_CHECKING

from analyzer.commands._dataset import print_dataset_notes
from analyzer.commands._options import add_executor, executor_settings, parse_models
from analyzer.config import load_config_file, resolve_config
from analyzer.errors import EXIT_OK, EXIT_PARTIAL
from analyzer.request import RankRequest

if TYPE_CHECKING:
    from analyzer.result import RankingResult

NAME = "rank"
HELP = "rank candidate backbones for a dataset by transferability metrics, with bootstrap and baselines"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per :class:`~analyzer.request.RankRequest` field (its help and bounds from the field), plus
    ``--config``, ``--executor``/``--ray-address`` and ``--quiet``. No default here may override the ``--config``
    file: a flag left out is None."""
    for name, (spec, _default) in RankRequest.options().items():
        if not spec.flag:
            continue
        flag = f"--{name.replace('_', '-')}"
        bounds = f" [accepted: {spec.bounds()}]" if spec.has_bounds else ""
        if bool in spec.kinds:
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=None, help=spec.help)
        elif float in spec.kinds or int in spec.kinds:
            kind = float if float in spec.kinds else int
            parser.add_argument(flag, type=kind, default=None, help=spec.help + bounds)
        else:
            parser.add_argument(flag, default=None, help=spec.help)
        if name == "cache_dir":
            parser.add_argument(
                "--config",
                default=None,
                help="TOML file with the same keys as these flags; flags override it",
            )
    add_executor(parser)
    parser.add_argument("--quiet", action="store_true", help="no progress messages")


def request_from_args(args: argparse.Namespace) -> RankRequest:
    """The checked request of the flags and the ``--config`` file (flags override the file)."""
    file_values = load_config_file(args.config) if args.config else {}
    flags = {name: getattr(args, name, None) for name in RankRequest.field_names()}
    flags["models"] = parse_models(args.models) if args.models is not None else None  # reads @file.txt
    flags["executor"] = executor_settings(args) or None
    return resolve_config(file_values, flags)


def run(args: argparse.Namespace) -> int:
    from analyzer.commands._progress import StageBars
    from analyzer.ranking import run_and_save

    request = request_from_args(args)
    bars = StageBars(request.models, enabled=not args.quiet)
    try:
        saved = run_and_save(
            request,
            on_progress=bars.event,
            on_dataset=lambda dataset: print_dataset_notes(dataset, quiet=args.quiet),
        )
    finally:
        bars.close()
    print_summary(saved.result)
    print(f"\nreports written to {saved.out}/ (report.html, report.md, ranking.csv, report.json)")
    return partial_exit(saved.result, request.metrics)


def partial_exit(result: RankingResult, requested: Sequence[str] | None) -> int:
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
