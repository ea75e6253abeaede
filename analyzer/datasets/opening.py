"""open_dataset(): a spec read by its registered format, then the steps common to all formats, in order.

A format reader (one module per format) turns a spec into a :class:`Table`: every row of the source with its
sample id, original label and an :class:`ImageLoader` that decodes row ``r`` to an RGB image. ``open_dataset``
then applies, in this order and identically for every format: the split filter, rows the reader already knows are
bad (missing file, empty label), deterministic stratified subsampling, decoding every selected image (corrupt or
truncated files), and finally the fingerprint over what is left. Adding a format is one module that calls
:func:`register_format`; nothing here changes.
"""

from __future__ import annotations

import os

import numpy as np

from analyzer.config import check_max_per_class
from analyzer.datasets.checks import check_rows_remembered, raise_bad
from analyzer.datasets.dataset import Dataset, build_dataset
from analyzer.datasets.formats import ReadOptions, Table, resolve_format
from analyzer.datasets.labels import mark_infinite_labels, refuse_continuous_labels
from analyzer.datasets.subsample import stratified_subsample
from analyzer.errors import DatasetError


def _select_split(table: Table, split: str, spec: str) -> np.ndarray:
    if table.splits is None:
        raise DatasetError(
            f"--split {split!r} was given but dataset {spec!r} has no split column or split sub-folder",
            "drop --split, or add a 'split' column (CSV/JSONL/HF) / a 'splits' array (npz)",
        )
    splits = np.asarray(table.splits).astype(str)
    selected = np.flatnonzero(splits == split)
    if len(selected) == 0:
        found = sorted(set(splits.tolist()))
        raise DatasetError(
            f"split {split!r} selects no sample of {spec!r}; its split values are {found}",
            "pass one of those values to --split",
        )
    return selected


def open_dataset(
    spec: str | os.PathLike[str],
    *,
    max_per_class: int | None = None,
    seed: int = 0,
    split: str | None = None,
    image_column: str = "image",
    label_column: str = "label",
    skip_bad: bool = False,
    validate: bool = True,
    check_cache: str | os.PathLike[str] | None = None,
) -> Dataset:
    """Open a labelled image dataset for extraction.

    Args:
        spec: an image-folder directory, a ``.csv`` / ``.jsonl`` (``path,label[,split]``), an ``.npz``
            (``images``, ``labels``[, ``class_names``, ``splits``]), a ``datasets.save_to_disk`` directory,
            ``sklearn:digits``, or ``FORMAT:PATH`` to force a registered format.
        max_per_class: keep at most this many samples per class (deterministic, stratified); None keeps all.
        seed: seeds the subsampling; only affects the data (and the fingerprint) when ``max_per_class`` is set.
        split: keep only this split (split column, HF DatasetDict split, or image-folder split sub-folder).
        image_column, label_column: column names for HF datasets and tables.
        skip_bad: drop unreadable samples (missing, corrupt or truncated files, empty labels) and record them in
            ``.skipped``; by default they raise a :class:`DatasetError` listing them.
        validate: decode every selected image now (default). With False, call :func:`check_images` before use.
        check_cache: a folder (``<cache dir>/checks``) that remembers the result of that decode, keyed by the
            files' paths, sizes and mtimes: reopening an unchanged dataset then decodes nothing (an ImageNet-size
            folder takes minutes to decode). None decodes every time.

    Raises:
        DatasetError: unreadable spec, missing columns, mismatched labels, a split selecting nothing, bad files.
    """
    spec = os.fspath(spec)
    check_max_per_class(max_per_class)
    fmt, rest = resolve_format(os.path.expanduser(spec) if spec.startswith("~") else spec)
    options = ReadOptions(split=split, image_column=image_column, label_column=label_column)
    table = fmt.read(rest, options)
    n_rows = len(table.sample_ids)
    if len(table.labels) != n_rows:
        raise AssertionError(f"reader {fmt.name} returned {n_rows} ids but {len(table.labels)} labels")
    refuse_continuous_labels(table, spec)
    mark_infinite_labels(table)

    rows = np.arange(n_rows)
    if split is not None and not table.split_applied:
        rows = _select_split(table, split, spec)

    skipped: list[tuple[str, str]] = []
    known_bad = {r: reason for r, reason in table.bad}
    bad_here = [(table.sample_ids[r], known_bad[r]) for r in map(int, rows) if r in known_bad]
    if bad_here:
        if not skip_bad:
            raise_bad(spec, bad_here, "unusable sample(s)")
        skipped.extend(bad_here)
        rows = np.array([r for r in rows if r not in known_bad], dtype=np.int64)

    if max_per_class is not None and len(rows):
        rows = rows[stratified_subsample(table.labels[rows], max_per_class, seed)]

    checked = False
    if validate:
        reasons = check_rows_remembered(table, rows, spec, check_cache)
        corrupt = [(table.sample_ids[r], reason) for r, reason in zip(rows, reasons, strict=True) if reason]
        if corrupt:
            if not skip_bad:
                raise_bad(spec, corrupt, "unreadable image(s)")
            skipped.extend(corrupt)
            rows = np.array(
                [r for r, reason in zip(rows, reasons, strict=True) if not reason], dtype=np.int64
            )
        checked = True

    if len(rows) == 0:
        raise DatasetError(
            f"dataset {spec!r} has no usable sample left" + (f" ({len(skipped)} skipped)" if skipped else ""),
            "check the path, the split and the label column; every sample was missing, unreadable or filtered out",
        )

    return build_dataset(
        table,
        fmt.name,
        spec,
        np.asarray(rows, dtype=np.int64),
        skipped,
        {
            "max_per_class": max_per_class,
            "seed": seed,
            "split": split,
            "image_column": image_column,
            "label_column": label_column,
            "skip_bad": skip_bad,
        },
        checked,
    )
