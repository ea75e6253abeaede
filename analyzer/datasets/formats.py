"""What a format reader returns (:class:`Table`) and the format registry: ``register_format``, detection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.datasets.images import ImageLoader
from analyzer.errors import DatasetError


# ----------------------------------------------------------------------------------------------------------------
# what a reader returns
# ----------------------------------------------------------------------------------------------------------------
@dataclass
class ReadOptions:
    """The ``open_dataset`` options a reader may need."""

    split: str | None = None
    image_column: str = "image"
    label_column: str = "label"


@dataclass
class Table:
    """Every row of a source, before the common steps.

    Attributes:
        name: a short display name (folder or file stem).
        sample_ids: one stable id per row (relative path, or ``row:<i>``).
        labels: original label values (N,): int64, float64 or str; entries of rows listed in ``bad`` are ignored.
        loader: decodes row ``r``.
        declared_names: names of label values the source declares (npz ``class_names``, HF ClassLabel), if any.
        splits: the split value of every row (N,) when the source has a split column; else None.
        split_applied: the reader already selected ``options.split`` (HF DatasetDict, a split sub-folder).
        bad: rows known to be unusable before decoding, with the reason (missing file, empty label).
        problems: warnings for the caller (ignored files, empty class folders).
        source: extra JSON-serialisable identity of the source as a whole for the fingerprint.
    """

    name: str
    sample_ids: list[str]
    labels: np.ndarray
    loader: ImageLoader
    declared_names: dict[Any, str] | None = None
    splits: np.ndarray | None = None
    split_applied: bool = False
    bad: list[tuple[int, str]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    source: Any = None


Reader = Callable[[str, ReadOptions], Table]


@dataclass(frozen=True)
class DatasetFormat:
    """A registered format: ``detect(spec)`` says whether it reads ``spec``; lower ``priority`` is tried first."""

    name: str
    read: Reader
    detect: Callable[[str], bool]
    priority: int
    description: str


_FORMATS: dict[str, DatasetFormat] = {}


def register_format(
    name: str, *, detect: Callable[[str], bool], priority: int = 50, description: str = ""
) -> Callable[[Reader], Reader]:
    """Register ``read(spec, options) -> Table`` as format ``name``.

    A spec may name its format explicitly (``name:REST``, e.g. ``sklearn:digits`` or ``csv:labels.txt``);
    otherwise the detectors run in ascending ``priority`` order and the first that accepts the spec reads it.
    """

    def decorator(read: Reader) -> Reader:
        if name in _FORMATS:
            raise ValueError(f"dataset format {name!r} is registered twice; give the new reader another name")
        _FORMATS[name] = DatasetFormat(
            name, read, detect, priority, description or (read.__doc__ or "").strip()
        )
        return read

    return decorator


def available_formats() -> dict[str, str]:
    """Registered format names with a one-line description, in detection order."""
    ordered = sorted(_FORMATS.values(), key=lambda f: (f.priority, f.name))
    return {f.name: f.description.splitlines()[0] if f.description else "" for f in ordered}


def resolve_format(spec: str) -> tuple[DatasetFormat, str]:
    """The format that reads ``spec`` and the spec to hand it (the explicit ``name:`` prefix removed)."""
    prefix, sep, rest = spec.partition(":")
    if sep and prefix in _FORMATS:
        return _FORMATS[prefix], rest
    for fmt in sorted(_FORMATS.values(), key=lambda f: (f.priority, f.name)):
        if fmt.detect(spec):
            return fmt, spec
    if not Path(spec).exists():
        raise DatasetError(
            f"dataset {spec!r} does not exist",
            "pass an image-folder directory, a .csv/.jsonl/.npz file, a datasets.save_to_disk directory, or one of: "
            + ", ".join(f"{name}:..." for name in available_formats()),
        )
    raise DatasetError(
        f"no dataset reader recognises {spec!r}",
        "pass an image-folder directory, a .csv/.jsonl/.npz file or a datasets.save_to_disk directory, or prefix the "
        "spec with its format (" + ", ".join(f"{name}:PATH" for name in available_formats()) + ")",
    )


# ----------------------------------------------------------------------------------------------------------------
