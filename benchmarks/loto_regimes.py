"""Re-choose the default across ground-truth regimes from measured scores, without re-extracting anything.

    .venv/bin/python benchmarks/loto_regimes.py --study benchmarks/results/study-2026-12-05-loto-three-targets.md \\
        --finetune notmnist=assets/notmnist/truth.csv [--finetune cifar10@10=/tmp/truth-cifar10@10.csv ...]

Reads every target's raw scores and linear-probe truth from an ``aggregate_study.py`` report (its "Raw scores"
tables, the candidates' scores as that study measured them, 4 significant digits) and adds, for each ``--finetune
TARGET=CSV``, the same target with the fine-tuned accuracy (``model,regime,accuracy,sem``, ``model`` = the net's name,
as ``benchmarks/finetune_truth.py`` writes) as its truth, named ``TARGET/ft``. Then it prints, for every candidate
fixed before looking (the study's label-only metrics, :data:`aggregate_study.CANDIDATE_AGGREGATES` and
:data:`aggregate_study.CANDIDATE_RULES`; nothing that needs a source head): the weighted tau on each target and
regime with its worst case in bold, and the leave-one-target-out table (:mod:`benchmarks.loto`).
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from analyzer.truth import load_ground_truth  # noqa: E402
from benchmarks.aggregate_study import (  # noqa: E402
    BASELINES,
    FINETUNE_SUFFIX,
    TargetScores,
    build_table,
)
from benchmarks.loto import DEFAULT_CANDIDATE_KINDS, leave_one_target_out, loto_markdown, worst_case_markdown  # noqa: E402

_HEADER = re.compile(r"^\*\*(?P<name>[^*]+)\*\* \((?P<n>\d+) images, (?P<c>\d+) classes\)")
_RAW = re.compile(r"^\*\*(?P<name>[^*]+)\*\* raw scores")


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None  # "n/a"


def parse_study(text: str) -> list[TargetScores]:
    """Every target of an ``aggregate_study.py`` report: its raw scores (rows), linear-probe truth and size."""
    sizes: dict[str, tuple[int, int]] = {}
    targets: list[TargetScores] = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        header = _HEADER.match(line)
        if header:
            sizes[header["name"]] = (int(header["n"]), int(header["c"]))
        raw = _RAW.match(line)
        if not raw:
            continue
        table: list[str] = []
        for row in lines[i + 2 :]:  # the table: the consecutive "|" lines after the title and a blank line
            if not row.startswith("|"):
                break
            table.append(row)
        models = [cell.strip() for cell in table[0].strip("|").split("|")[1:]]
        scores: dict[str, dict[str, float | None]] = {}
        truth: dict[str, float] = {}
        for row in table[2:]:
            cells = [cell.strip() for cell in row.strip("|").split("|")]
            values = dict(zip(models, (_number(c) for c in cells[1:]), strict=True))
            if cells[0] == "*probe accuracy*":
                truth = {m: v for m, v in values.items() if v is not None}
            else:
                scores[cells[0]] = values
        n, c = sizes.get(raw["name"], (0, 0))
        targets.append(TargetScores(raw["name"], models, truth, scores, n_samples=n, n_classes=c))
    return targets


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--study", required=True, help="an aggregate_study.py markdown report")
    parser.add_argument(
        "--finetune",
        action="append",
        default=[],
        help="TARGET=CSV: that target's fine-tuned truth (repeatable)",
    )
    parser.add_argument("--out", default=None, help="also write the tables to this file")
    args = parser.parse_args(argv)
    targets = parse_study(Path(args.study).read_text(encoding="utf-8"))
    by_name = {t.name: t for t in targets}
    for item in args.finetune:
        name, _, path = item.partition("=")
        if name not in by_name:
            parser.error(f"--finetune {item}: the study has no target {name!r} ({', '.join(by_name)})")
        truth = load_ground_truth(path, regime="finetune")
        target = by_name[name]
        missing = [m for m in target.models if m not in truth]
        if missing:
            parser.error(f"--finetune {item}: no fine-tuned accuracy for {', '.join(missing)}")
        targets.append(
            replace(target, name=name + FINETUNE_SUFFIX, truth={m: truth[m] for m in target.models})
        )
    metric_names = [m for m in targets[0].scores if m not in BASELINES]
    rows = build_table(targets, metric_names=metric_names)
    names = [t.name for t in targets]
    text = "## Every candidate's weighted tau per target and regime (worst case in bold)\n\n"
    text += worst_case_markdown(rows, names, DEFAULT_CANDIDATE_KINDS) + "\n\n"
    text += "## Leave one target out: the candidate with the best worst case on the other datasets, judged on each\n\n"
    text += loto_markdown(leave_one_target_out(rows, names, kinds=DEFAULT_CANDIDATE_KINDS)) + "\n\n"
    text += "## The same, choosing among the fixed aggregates only (the 2026-12-05 protocol)\n\n"
    text += loto_markdown(leave_one_target_out(rows, names)) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
