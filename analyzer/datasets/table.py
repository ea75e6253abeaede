"""A CSV or JSONL label file: one row per image with ``path`` and ``label`` columns, optionally ``split``.

Paths are relative to the label file's directory (absolute paths are kept). The path column is ``path``, else the
configured image column; the label column is configurable (``--label-column``). Labels that all parse as integers
become int64 ("3" → 3), all-numeric ones float64, anything else str. Sample ids are the paths as written.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.datasets.formats import ReadOptions, Table, register_format
from analyzer.datasets.images import FileLoader
from analyzer.datasets.labels import labels_with_gaps
from analyzer.errors import DatasetError
from analyzer.inputs import read_user_text

CSV_SUFFIXES = (".csv", ".tsv")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
SPLIT_COLUMN = "split"


def _read_text(path: Path) -> str:
    # utf-8-sig strips the byte-order mark spreadsheets write, which would otherwise rename the first column;
    # a Latin-1 file or a binary one is named with the fix, not a bare codec error.
    return read_user_text(
        path, what="label file", fix="give a UTF-8 CSV/JSONL label file (path,label)", kind=DatasetError
    )


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    with io.StringIO(_read_text(path), newline="") as handle:
        sample = handle.read(4096)
        handle.seek(0)
        delimiter = "\t" if path.suffix.lower() == ".tsv" or ("\t" in sample and "," not in sample) else ","
        reader = csv.DictReader(handle, delimiter=delimiter)
        columns = [c.strip() for c in (reader.fieldnames or [])]
        rows = [{(k or "").strip(): v for k, v in row.items()} for row in reader]
    return columns, rows


def _read_jsonl(path: Path) -> tuple[list[str], list[dict[str, Any]]]:
    rows: list[dict[str, Any]] = []
    columns: dict[str, None] = {}
    with io.StringIO(_read_text(path)) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as error:
                raise DatasetError(
                    f"{path}:{number} is not valid JSON ({error.msg})", "write one JSON object per line"
                ) from None
            if not isinstance(row, dict):
                raise DatasetError(
                    f"{path}:{number} is a JSON {type(row).__name__}, not an object",
                    'write one object per line, e.g. {"path": "img/1.png", "label": "cat"}',
                )
            rows.append(row)
            columns.update(dict.fromkeys(row))
    return list(columns), rows


def _path_column(columns: list[str], options: ReadOptions, source: Path) -> str:
    if options.image_column != "image":  # the user named the column explicitly
        candidates = [options.image_column]
    else:
        candidates = ["path", "image"]
    for name in candidates:
        if name in columns:
            return name
    raise DatasetError(
        f"{source} has no image path column ({' or '.join(repr(c) for c in candidates)}); its columns are {columns}",
        "name the column of image paths 'path', or pass --image-column NAME",
    )


def _folder_label_problems(sample_ids: list[str], labels: np.ndarray, unusable: set[int]) -> list[str]:
    """Warnings when the paths are laid out as class folders (``<class>/<file>``) but labels disagree with them.

    Only applies when most rows' label equals their first path component, i.e. the folders evidently are the
    classes; then a label naming no folder is an unknown label value and a row filed under another class's folder
    is probably mislabelled. Both are reported, not fatal: the label file is the user's statement of truth.
    """
    if labels.dtype.kind != "U":
        return []
    rows = [i for i in range(len(sample_ids)) if i not in unusable]
    parts = {i: sample_ids[i].split("/") for i in rows}
    if not rows or any(len(p) < 2 for p in parts.values()):
        return []
    folder = {i: parts[i][0] for i in rows}
    agreeing = sum(folder[i] == labels[i] for i in rows)
    if agreeing * 2 <= len(rows):
        return []
    folders = set(folder.values())
    problems = []
    unknown = sorted({str(labels[i]) for i in rows} - folders)
    if unknown:
        problems.append(
            f"label value(s) {unknown[:20]} name no class folder (folders: {sorted(folders)[:20]}); "
            "check the label file for typos"
        )
    mismatched = [sample_ids[i] for i in rows if folder[i] != labels[i] and labels[i] in folders]
    if mismatched:
        problems.append(
            f"{len(mismatched)} row(s) are labelled with another class than their folder, e.g. {mismatched[:5]}; "
            "check the label file"
        )
    return problems


def _read_table(spec: str, options: ReadOptions, kind: str) -> Table:
    source = Path(spec).expanduser()
    if not source.is_file():
        raise DatasetError(f"label file {spec!r} does not exist", "check the path of the CSV/JSONL file")
    columns, rows = _read_csv(source) if kind == "csv" else _read_jsonl(source)
    if not rows:
        raise DatasetError(f"label file {spec!r} has no rows", "add one row per image: path,label")
    path_column = _path_column(columns, options, source)
    if options.label_column not in columns:
        raise DatasetError(
            f"{source} has no label column {options.label_column!r}; its columns are {columns}",
            "name the label column 'label', or pass --label-column NAME",
        )

    root = source.parent
    sample_ids: list[str] = []
    bad: list[tuple[int, str]] = []
    first_row: dict[str, int] = {}
    duplicates: list[str] = []
    for i, row in enumerate(rows):
        raw = row.get(path_column)
        text = "" if raw is None else str(raw).strip()
        if not text:
            # A stable, unique id for a row with no path, so it can be listed and skipped like any other.
            sample_ids.append(f"row:{i}")
            bad.append((i, f"row {i + 1} has an empty {path_column!r}"))
            continue
        text = text.replace("\\", "/")
        if text in first_row:
            duplicates.append(f"{text} (rows {first_row[text] + 1} and {i + 1})")
        first_row.setdefault(text, i)
        sample_ids.append(text)
    if duplicates:
        raise DatasetError(
            f"{source} lists {len(duplicates)} image path(s) more than once: {'; '.join(duplicates[:10])}",
            "keep one row per image (one label per image)",
        )

    raw_labels = [row.get(options.label_column) for row in rows]
    labels, missing = labels_with_gaps(raw_labels)
    known = {r for r, _ in bad}
    bad.extend((i, f"empty label in column {options.label_column!r}") for i in missing if i not in known)
    known.update(missing)

    loader = FileLoader(root, sample_ids)
    for i in range(len(rows)):
        if i not in known and not loader.file(i).is_file():
            bad.append((i, f"file not found: {loader.file(i)}"))

    problems = _folder_label_problems(sample_ids, labels, known)

    splits = None
    if SPLIT_COLUMN in columns:
        splits = np.array(
            ["" if row.get(SPLIT_COLUMN) is None else str(row[SPLIT_COLUMN]).strip() for row in rows]
        )

    return Table(
        name=source.stem,
        sample_ids=sample_ids,
        labels=labels,
        loader=loader,
        splits=splits,
        bad=sorted(bad),
        problems=problems,
        # Paths, labels and each image's size and mtime enter the fingerprint per sample, which covers every
        # edit of the label file that changes the data; a re-save that changes nothing keeps the cache.
        source={"path_column": path_column},
    )


@register_format(
    "csv",
    detect=lambda spec: Path(spec).suffix.lower() in CSV_SUFFIXES,
    priority=10,
    description="a CSV file with path,label[,split] columns; paths relative to the file",
)
def read_csv(spec: str, options: ReadOptions) -> Table:
    """A CSV file with path,label[,split] columns; paths relative to the file."""
    return _read_table(spec, options, "csv")


@register_format(
    "jsonl",
    detect=lambda spec: Path(spec).suffix.lower() in JSONL_SUFFIXES,
    priority=10,
    description="a JSON-lines file, one {path, label[, split]} object per line; paths relative to the file",
)
def read_jsonl(spec: str, options: ReadOptions) -> Table:
    """A JSON-lines file, one {path, label[, split]} object per line; paths relative to the file."""
    return _read_table(spec, options, "jsonl")
