"""The full-decode check of a dataset's images (threaded), remembered per set of files in the checks cache."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from analyzer.datasets.dataset import MAX_LISTED, Dataset, build_dataset
from analyzer.datasets.formats import Table
from analyzer.datasets.images import ImageLoader
from analyzer.errors import DatasetError
from analyzer.records import RecordCache

SKIP_FIX = (
    "fix or remove these files, or pass --skip-bad (`skip_bad = true` in a rank config; skip_bad=True in "
    "Python) to drop them; dropped samples are listed as skipped"
)


def _format_bad(bad: Sequence[tuple[str, str]]) -> str:
    lines = [f"  {sample_id}: {reason}" for sample_id, reason in bad[:MAX_LISTED]]
    if len(bad) > MAX_LISTED:
        lines.append(f"  ... and {len(bad) - MAX_LISTED} more")
    return "\n".join(lines)


def raise_bad(spec: str, bad: Sequence[tuple[str, str]], what: str) -> None:
    raise DatasetError(f"dataset {spec!r} has {len(bad)} {what}:\n{_format_bad(bad)}", SKIP_FIX)


def check_images(dataset: Dataset, *, workers: int | None = None) -> list[tuple[str, str]]:
    """Decode every image of ``dataset``; return ``(sample_id, reason)`` for those that fail (empty: all fine).

    Extraction calls this before its first forward pass. A dataset opened with ``validate=True`` (the default)
    was already decoded in full, so this returns ``[]`` at once; array sources cannot fail and are not decoded.
    """
    if dataset.checked or not dataset._loader.needs_check:
        return []
    reasons = _check_rows(dataset._loader, dataset._rows, workers)
    return [(dataset.sample_ids[i], reason) for i, reason in enumerate(reasons) if reason is not None]


def validate_dataset(dataset: Dataset, *, skip_bad: bool | None = None) -> Dataset:
    """``dataset`` with every image decoded: itself when already checked, else a checked copy.

    Bad images raise a :class:`DatasetError` listing them, or with ``skip_bad`` (default: the option the dataset
    was opened with) are dropped and added to ``skipped``; the copy's fingerprint then covers the smaller sample
    list, so features of the full list are never served for it.
    """
    if dataset.checked:
        return dataset
    skip = dataset.options.get("skip_bad", False) if skip_bad is None else skip_bad
    reasons = _check_rows(dataset._loader, dataset._rows, None)
    bad = [
        (sample_id, reason) for sample_id, reason in zip(dataset.sample_ids, reasons, strict=True) if reason
    ]
    if bad and not skip:
        raise_bad(dataset.spec, bad, "unreadable image(s)")
    rows = np.array(
        [r for r, reason in zip(dataset._rows, reasons, strict=True) if not reason], dtype=np.int64
    )
    if len(rows) == 0:
        raise DatasetError(
            f"dataset {dataset.spec!r} has no readable image ({len(bad)} unreadable)",
            "check that the files are images PIL can open; re-export or re-download them",
        )
    return build_dataset(
        dataset._table,
        dataset.format,
        dataset.spec,
        rows,
        list(dataset.skipped) + bad,
        dict(dataset.options, skip_bad=skip),
        True,
    )


def _check_rows(loader: ImageLoader, rows: np.ndarray, workers: int | None) -> list[str | None]:
    if not loader.needs_check or len(rows) == 0:
        return [None] * len(rows)
    # PIL releases the GIL while decoding, so threads overlap file reads and decodes without pickling anything.
    workers = workers or min(8, os.cpu_count() or 1)
    if workers <= 1 or len(rows) < 64:
        return [loader.check(int(r)) for r in rows]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(loader.check, (int(r) for r in rows), chunksize=32))


#: Bump when the remembered check's key or file changes shape, so an old record is never read as a new one.
CHECK_RECORD_VERSION = 1


def check_rows_remembered(
    table: Table, rows: np.ndarray, spec: str, record_dir: str | os.PathLike[str] | None
) -> list[str | None]:
    """:func:`_check_rows`, remembered in ``record_dir``: the per-row results of a full decode are written there
    under a hash of the spec and the rows' identity (ids plus the loader's fingerprint: file sizes and mtimes, or
    content hashes), so reopening an unchanged dataset decodes nothing. Any change to a file changes the key. An
    unreadable or damaged record is ignored (the check simply runs again); it is written atomically."""
    if record_dir is None or not table.loader.needs_check or len(rows) == 0:
        return _check_rows(table.loader, rows, None)
    identity = {
        "version": CHECK_RECORD_VERSION,
        "spec": os.path.abspath(spec) if os.path.exists(spec) else spec,
        "ids": [table.sample_ids[int(r)] for r in rows],
        "content": table.loader.fingerprint(rows),
        "source": table.source,
    }
    key = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()[:32]
    records = RecordCache(record_dir)
    record = records.get(key)
    reasons = record.get("reasons") if isinstance(record, dict) else None
    if isinstance(reasons, list) and len(reasons) == len(rows):
        return [None if r is None else str(r) for r in reasons]
    reasons = _check_rows(table.loader, rows, None)
    try:
        records.put(key, {"spec": spec, "reasons": reasons})
    except OSError:
        pass  # a read-only cache only costs the next open another decode
    return reasons
