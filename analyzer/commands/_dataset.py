"""What every command that opens a dataset tells the user about it: its size, warnings, skipped samples."""

from __future__ import annotations

import sys

from analyzer.contracts import Dataset


def print_dataset_notes(dataset: Dataset, *, quiet: bool = False) -> None:
    """Print the dataset's size (unless ``quiet``), its warnings and every sample ``--skip-bad`` dropped, to
    stderr: a skipped sample is never silent, even with ``--quiet``."""
    if not quiet:
        print(
            f"dataset {dataset.name}: {len(dataset)} images, {len(dataset.class_names)} classes",
            file=sys.stderr,
        )
    for problem in dataset.problems:
        print(f"warning: {problem}", file=sys.stderr)
    if dataset.skipped:
        print(f"skipped {len(dataset.skipped)} unreadable sample(s):", file=sys.stderr)
        for sample_id, reason in dataset.skipped:
            print(f"  {sample_id}: {reason}", file=sys.stderr)
