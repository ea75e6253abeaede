"""Label values as read from text or JSON, and the label checks every format shares."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from analyzer import contracts
from analyzer.datasets.formats import Table
from analyzer.errors import DatasetError


# ----------------------------------------------------------------------------------------------------------------
def is_missing_label(value: Any) -> bool:
    """Empty, whitespace-only, None or NaN: a row without a label."""
    if value is None:
        return True
    if isinstance(value, str):
        # "nan" is what pandas and numpy write for a missing number; as a label it would become a NaN class.
        return not value.strip() or value.strip().lower() == "nan"
    if isinstance(value, float | np.floating):
        return bool(np.isnan(value))
    return False


def _as_int(value: Any) -> int:
    if isinstance(value, int | np.integer) or isinstance(value, str):
        return int(value)
    raise ValueError(f"{value!r} is not an integer label")


def _as_float(value: Any) -> float:
    if isinstance(value, int | float | np.integer | np.floating | str):
        return float(value)
    raise ValueError(f"{value!r} is not a numeric label")


def normalize_labels(values: Sequence[Any]) -> np.ndarray:
    """Label values read from text or JSON (CSV, JSONL, HF columns) as an int64, float64 or str array (N,).

    Integers stay integers ("3" → 3) so a CSV and an npz of the same data give the same labels; numbers with a
    fraction or written as floats ("0.5", 1.0) become float64; anything else, or any mix with booleans, becomes
    str. Missing values must have been removed before calling (see :func:`labels_with_gaps`).
    """
    texts = [v.strip() if isinstance(v, str) else v for v in values]
    if not any(isinstance(v, bool | np.bool_) for v in texts):
        for convert, dtype in ((_as_int, np.int64), (_as_float, np.float64)):
            try:
                return np.array([convert(v) for v in texts], dtype=dtype)
            except (TypeError, ValueError, OverflowError):
                continue
    return np.array([str(v) for v in texts], dtype=str)


def labels_with_gaps(values: Sequence[Any]) -> tuple[np.ndarray, list[int]]:
    """Raw label values → (labels array, rows whose label is missing).

    Missing rows get a placeholder of the array's dtype; ``open_dataset`` drops or reports them before the labels
    are used, so the placeholder never reaches a caller.
    """
    missing = [i for i, v in enumerate(values) if is_missing_label(v)]
    missing_set = set(missing)
    present = normalize_labels([v for i, v in enumerate(values) if i not in missing_set])
    labels = np.zeros(len(values), dtype=present.dtype)  # "" for str dtypes, 0 for numbers
    keep = np.array([i for i in range(len(values)) if i not in missing_set], dtype=np.int64)
    labels[keep] = present
    return labels, missing


def mark_infinite_labels(table: Table) -> None:
    """Add the rows whose float label is +inf or -inf to ``table.bad``: no class is named "inf" (they became one,
    silently, while NaN was already an empty label); refused with their rows, or dropped with ``--skip-bad``."""
    if table.labels.dtype.kind != "f":
        return
    known = {r for r, _ in table.bad}
    for row in np.flatnonzero(np.isinf(table.labels)).tolist():
        if row not in known:
            table.bad.append((row, f"infinite label ({table.labels[row]:g}), not a class"))


def refuse_continuous_labels(table: Table, spec: str) -> None:
    """Raise when the labels are evidently regression targets: fractional numbers, most of them distinct.

    Classes given as floats (1.0, 2.0, or a few values such as 0.5 / 1.5) pass; 40 samples with 40 different
    fractional values would otherwise become 40 one-sample classes and every label-based score meaningless.
    """
    labels = table.labels
    if labels.dtype.kind != "f" or len(labels) == 0:
        return
    known_bad = {r for r, _ in table.bad}
    usable = labels[[r for r in range(len(labels)) if r not in known_bad]]
    usable = usable[np.isfinite(usable)]
    distinct = np.unique(usable)
    if not np.any(usable != np.round(usable)) or len(distinct) <= max(10, len(usable) // 2):
        return
    shown = ", ".join(f"{v:g}" for v in usable[:5])
    raise DatasetError(
        f"the labels of {spec!r} look like continuous (regression) targets: {len(distinct)} distinct fractional "
        f"values among {len(usable)} samples (e.g. {shown}); the analyzer ranks backbones for classification",
        "give class labels (integers or names), or bin the targets into classes first (e.g. by quantile)",
    )


def require_classes(dataset: contracts.Dataset, *, purpose: str) -> None:
    """Refuse, before any extraction, a dataset no label-based score can use: one class, or no class with two
    samples. ``purpose`` names the command in the message ("ranking", "the probe")."""
    counts = np.unique(np.asarray(dataset.labels), return_counts=True)[1]
    if len(counts) < 2:
        raise DatasetError(
            f"dataset {dataset.spec!r} has {len(counts)} class ({', '.join(dataset.class_names) or 'none'}) after "
            f"subsampling and skipping; {purpose} compares how well features separate classes, so it needs at "
            "least 2",
            "check the path, --split and the label column: every sample has the same label",
        )
    if int(counts.max()) < 2:
        raise DatasetError(
            f"every class of dataset {dataset.spec!r} has a single sample; {purpose} needs at least 2 samples in "
            "some classes",
            "add samples, or raise --max-per-class to 2 or more",
        )
