"""The :class:`Dataset` every reader produces, and how it is built over the selected rows (class names,
warnings, the fingerprint)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np
from PIL import Image

from analyzer.datasets.formats import Table

# Bump when the fingerprint payload changes shape, so no feature store entry keyed by an old one is ever served.
FINGERPRINT_VERSION = 1
# How many bad files an error message lists before summarising the rest.
MAX_LISTED = 20


# ----------------------------------------------------------------------------------------------------------------
# the dataset
# ----------------------------------------------------------------------------------------------------------------
class Dataset:
    """A labelled image dataset, subsampled and checked, ready for extraction.

    Attributes:
        name: display name; spec: what the user typed; format: the registered reader's name.
        sample_ids: stable ids (N,): relative paths for file datasets, ``row:<i>`` (source row) for arrays.
        labels: original label values (N,): str for image-folder class names, else as stored (int64, float64, str).
        classes: the sorted unique label values (C,); ``class_names[k]`` names ``classes[k]``.
        class_names: one name per class present (C,), declared names where the source has them.
        fingerprint: hex sha256 of format, per-sample content identity (path, size, mtime, or pixel hash), ids,
            labels, columns and the split/subsampling options; any change gives a different fingerprint.
        skipped: (id, reason) of samples dropped with ``skip_bad``.
        problems: warnings the caller should show (single-sample classes, ignored files); never fatal.
        options: the options the dataset was opened with.
        checked: every image was decoded successfully (``validate=True``, or :func:`validate_dataset`).
    """

    def __init__(
        self,
        *,
        name: str,
        spec: str,
        format: str,
        sample_ids: list[str],
        labels: np.ndarray,
        class_names: list[str],
        classes: np.ndarray,
        fingerprint: str,
        skipped: list[tuple[str, str]],
        problems: list[str],
        options: dict[str, Any],
        table: Table,
        rows: np.ndarray,
        checked: bool,
    ) -> None:
        self.name = name
        self.spec = spec
        self.format = format
        self.sample_ids = sample_ids
        self.labels = labels
        self.class_names = class_names
        self.classes = classes
        self.fingerprint = fingerprint
        self.skipped = skipped
        self.problems = problems
        self.options = options
        self._table = table
        self._loader = table.loader
        self._rows = rows
        self.checked = checked

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, format={self.format!r}, n={len(self)}, classes={len(self.class_names)}, "
            f"fingerprint={self.fingerprint[:12]})"
        )

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def load_image(self, i: int) -> Image.Image:
        """Sample ``i`` (0..N-1) as an RGB PIL image, decoded fresh from the source."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"sample {i} out of range for a dataset of {len(self)}")
        return self._loader.load(int(self._rows[i]))

    def to_dict(self) -> dict[str, Any]:
        """The ``dataset`` block of report.json."""
        return {
            "spec": self.spec,
            "fingerprint": self.fingerprint,
            "n_samples": len(self),
            "n_classes": self.num_classes,
            "class_names": list(self.class_names),
            "skipped": [[sample_id, reason] for sample_id, reason in self.skipped],
        }


def _fingerprint(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def build_dataset(
    table: Table,
    format_name: str,
    spec: str,
    rows: np.ndarray,
    skipped: list[tuple[str, str]],
    options: dict[str, Any],
    checked: bool,
) -> Dataset:
    """The final Dataset over ``rows`` of ``table``: class names, warnings and the fingerprint."""
    labels = table.labels[rows]
    sample_ids = [table.sample_ids[r] for r in rows]
    classes, counts = np.unique(labels, return_counts=True)
    declared = table.declared_names or {}
    class_names = [declared.get(value.item(), str(value.item())) for value in classes]

    problems = list(table.problems)
    singles = [name for name, count in zip(class_names, counts, strict=True) if count == 1]
    if singles:
        shown = ", ".join(repr(s) for s in singles[:MAX_LISTED]) + (
            " ..." if len(singles) > MAX_LISTED else ""
        )
        problems.append(
            f"{len(singles)} class(es) have a single sample ({shown}): metrics that need two samples per class "
            "cannot use them; add samples or remove those classes"
        )
    if len(classes) < 2:
        problems.append(f"only {len(classes)} class present: label-based metrics need at least 2")

    max_per_class = options["max_per_class"]
    payload = {
        "version": FINGERPRINT_VERSION,
        "format": format_name,
        "source": table.source,
        "content": table.loader.fingerprint(rows),
        "sample_ids": sample_ids,
        "labels": [labels.dtype.kind, [str(v) for v in labels.tolist()]],
        "class_names": class_names,
        "image_column": options["image_column"],
        "label_column": options["label_column"],
        "split": options["split"],
        "max_per_class": max_per_class,
        # The seed only changes the data when subsampling; keeping it out otherwise means a different bootstrap
        # seed elsewhere in the run does not throw away cached features.
        "seed": options["seed"] if max_per_class is not None else None,
    }
    split = options["split"]
    return Dataset(
        name=table.name if split is None else f"{table.name}-{split}",
        spec=spec,
        format=format_name,
        sample_ids=sample_ids,
        labels=labels,
        class_names=class_names,
        classes=classes,
        fingerprint=_fingerprint(payload),
        skipped=skipped,
        problems=problems,
        options=options,
        table=table,
        rows=rows,
        checked=checked,
    )
