"""Checksums of a store entry's files, and the quarantine where an entry that fails them is set aside.

``put`` writes the sha256 of every file of an entry into its meta.json (``checksums``: {file name: hex}). The
first ``get`` of an entry in a process hashes its files again and compares (:func:`verify_once`): later reads in
the same process trust that check (a 50 000 x 2 048 entry costs about a third of a second to hash:
``benchmarks/cache_checksum_bench.py``). An entry whose meta.json is unreadable, lacks a checksum, misses a file
or holds a file that differs from its checksum is never used: :func:`quarantine` moves it whole into
``<features>/quarantine/<key>-<time>/`` (with a ``REASON.txt``), where the user can inspect it, and the read is a
miss, so the entry is extracted again. Nothing is deleted.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from analyzer.store.files import IDS_FILE, INDEX_FILE, LABELS_FILE, PROBS_FILE

#: where damaged entries are moved, under the store's root; never read as entries
QUARANTINE_DIR = "quarantine"
#: the file that says why an entry was set aside, inside its quarantined folder
REASON_FILE = "REASON.txt"

#: the stamps (see :func:`_stamp`) of the entries whose files this process has hashed and found as written; any
#: change to a file's inode, size or mtime (a recomputed entry, an edit) makes the entry hashed again
_verified: set[tuple[object, ...]] = set()
_verified_lock = threading.Lock()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """The sha256 hex digest of a file's bytes, read in chunks (no copy of the file in memory)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def checksums(folder: Path, names: Iterable[str]) -> dict[str, str]:
    """{name: sha256} of the files ``names`` in ``folder``, hashed concurrently (hashlib releases the GIL)."""
    names = list(names)
    with ThreadPoolExecutor(max_workers=max(1, len(names))) as pool:
        digests = list(pool.map(lambda n: file_sha256(folder / n), names))
    return dict(zip(names, digests, strict=True))


def entry_files(meta: Mapping[str, Any]) -> list[str]:
    """The data files an entry with this meta.json must hold."""
    return [INDEX_FILE, LABELS_FILE, IDS_FILE] + ([PROBS_FILE] if meta.get("has_source_probs") else [])


def entry_problems(path: Path, meta: Mapping[str, Any]) -> list[str]:
    """What is wrong with the entry in ``path``: missing files, files that differ from their recorded sha256,
    a meta.json that records no checksum for a file (unverifiable). Empty when every file is as written."""
    recorded = meta.get("checksums")
    if not isinstance(recorded, dict):
        return ["its meta.json records no checksums, so its files cannot be verified"]
    problems = []
    present = []
    for name in entry_files(meta):
        if not (path / name).is_file():
            problems.append(f"{name} is missing")
        elif not isinstance(recorded.get(name), str):
            problems.append(f"its meta.json records no checksum for {name}")
        else:
            present.append(name)
    try:
        actual = checksums(path, present)
    except OSError as exc:
        return [*problems, f"a file cannot be read ({exc.strerror or exc})"]
    problems += [
        f"{name} differs from the checksum written with it (changed or damaged since)"
        for name in present
        if actual[name] != recorded[name]
    ]
    return problems


def _stamp(path: Path, names: Iterable[str]) -> tuple[object, ...] | None:
    """(folder, then inode, size and mtime of meta.json and each file), or None when one is missing."""
    parts: list[object] = [str(path)]
    for name in ("meta.json", *names):
        try:
            st = (path / name).stat()
        except OSError:
            return None
        parts += [st.st_ino, st.st_size, st.st_mtime_ns]
    return tuple(parts)


def verify_once(path: Path, meta: Mapping[str, Any]) -> list[str]:
    """:func:`entry_problems`, without hashing again an entry this process found as written and whose files
    have not changed since (same inode, size and mtime each)."""
    stamp = _stamp(path, entry_files(meta))
    with _verified_lock:
        if stamp is not None and stamp in _verified:
            return []
    problems = entry_problems(path, meta)
    if not problems and stamp is not None:
        with _verified_lock:
            _verified.add(stamp)
    return problems


def remember_verified(path: Path, meta: Mapping[str, Any]) -> None:
    """Mark the entry in ``path`` as verified in this process (``put`` has just hashed what it wrote)."""
    stamp = _stamp(path, entry_files(meta))
    if stamp is not None:
        with _verified_lock:
            _verified.add(stamp)


def quarantine(root: Path, key: str, reason: str) -> Path:
    """Move the entry ``root/key`` whole into ``root/quarantine/<key>-<UTC time>/`` with a REASON.txt, and return
    where it went. Raises OSError when it cannot be moved (a read-only cache); FileNotFoundError when another
    process moved or removed it first."""
    source = root / key
    folder = root / QUARANTINE_DIR
    folder.mkdir(exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    target = folder / f"{key}-{stamp}"
    os.rename(source, target)
    (target / REASON_FILE).write_text(reason + "\n", "utf-8")
    return target


def read_meta(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """(meta.json's object, None), or (None, why it cannot be read)."""
    try:
        meta = json.loads((path / "meta.json").read_text("utf-8"))
    except (OSError, ValueError) as exc:  # ValueError: not JSON, or bytes that are not UTF-8
        return None, f"its meta.json is unreadable ({exc})"
    if not isinstance(meta, dict):
        return None, "its meta.json is not a JSON object"
    return meta, None
