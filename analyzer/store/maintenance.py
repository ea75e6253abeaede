"""FeatureStore: the store core plus inspection and pruning (``cache ls``, ``du``, ``rm``)."""

from __future__ import annotations

import fnmatch
import json
import shutil
from collections.abc import Iterable
from typing import Any

try:  # POSIX: shared reader leases (flock); elsewhere entries in use are not protected from `cache rm`
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

from analyzer.errors import CacheError, UsageError
from analyzer.store.core import StoreCore
from analyzer.store.files import LOCKS_DIR, MEMO_DIR, META_FILE, PARTIAL_DIR, TMP_PREFIX, dir_size
from analyzer.store.integrity import entry_problems, read_meta
from analyzer.store.keys import STORE_FORMAT_VERSION
from analyzer.store.usage import StoreUsage


class FeatureStore(StoreCore):
    """The feature store under ``<cache_dir>/features/``.

    ``FeatureStore(cache_dir)`` takes the cache directory (``data_cache/`` by default; pass None to resolve it
    with :func:`analyzer.paths.resolve_cache_dir`, i.e. ``--cache-dir`` > ``$ANALYZER_CACHE_DIR`` >
    ``data_cache/``); entries live in its ``features/`` subdirectory (``self.root``).
    """

    # -- inspect and prune ---------------------------------------------------------------------------------
    def ls(self) -> list[dict[str, Any]]:
        """One row per finished entry: key, spec, dataset, n_samples, feature_dim, bytes, created, seconds."""
        rows = []
        for key in self.keys():
            path = self.entry_path(key)
            damaged = False
            try:
                meta = json.loads((path / META_FILE).read_text("utf-8"))
            except (OSError, ValueError):  # ValueError: JSONDecodeError and bytes that are not UTF-8
                meta, damaged = {}, True
            if not isinstance(meta, dict):
                meta, damaged = {}, True
            dataset = meta.get("dataset")
            if not isinstance(dataset, dict):
                dataset = {}
            rows.append(
                {
                    "key": key,
                    "spec": meta.get("spec"),
                    "dataset": dataset.get("spec") or dataset.get("name"),
                    "n_samples": meta.get("n_samples"),
                    "feature_dim": meta.get("feature_dim"),
                    "bytes": dir_size(path),
                    "created": meta.get("created"),
                    "extraction_seconds": (meta.get("timings") or {}).get("extraction_seconds"),
                    "valid": meta.get("format_version") == STORE_FORMAT_VERSION and meta.get("key") == key,
                    # damaged: meta.json missing or unreadable (not merely written by another format version)
                    "damaged": damaged,
                }
            )
        return rows

    def verify(self) -> list[dict[str, str]]:
        """Check every entry's files against their checksums (hashing each file, whatever this process checked
        before): one row per entry, ``{"key", "spec", "status", "problem"}`` with status ``ok``, ``damaged``
        (would be set aside when read) or ``stale`` (another format version: never read, ``cache rm --stale``).
        Moves nothing."""
        rows = []
        for key in self.keys():
            path = self.entry_path(key)
            meta, unreadable = read_meta(path)
            if meta is None:
                rows.append({"key": key, "spec": "", "status": "damaged", "problem": str(unreadable)})
                continue
            spec = str(meta.get("spec") or "")
            if meta.get("format_version") != STORE_FORMAT_VERSION or meta.get("key") != key:
                why = f"format version {meta.get('format_version')} (this one reads {STORE_FORMAT_VERSION})"
                rows.append({"key": key, "spec": spec, "status": "stale", "problem": why})
                continue
            problems = entry_problems(path, meta)
            status = "damaged" if problems else "ok"
            rows.append({"key": key, "spec": spec, "status": status, "problem": "; ".join(problems)})
        return rows

    def du(self) -> StoreUsage:
        """Disk usage in bytes: per entry, partial shards and leftover temp dirs."""
        entries = {key: dir_size(self.entry_path(key)) for key in self.keys()}
        partial = dir_size(self.root / PARTIAL_DIR) if (self.root / PARTIAL_DIR).exists() else 0
        temp = sum(dir_size(p) for p in self._temp_dirs())
        return StoreUsage(entries=entries, partial=partial, temp=temp)

    def match(self, patterns: Iterable[str]) -> list[str]:
        """Keys matching any pattern: a key prefix, or a glob (``fnmatch``) over the key or the model spec."""
        keys = self.keys()
        specs = {row["key"]: row["spec"] or "" for row in self.ls()}
        chosen: list[str] = []
        for pattern in patterns:
            if not pattern.strip():
                # "" is a prefix of every key: an unset "$KEY" in a script would empty the store
                raise UsageError(
                    "an empty pattern matches every entry and is refused",
                    "pass a key prefix or spec glob from `python -m analyzer cache ls`, or --all to remove "
                    "everything",
                )
            hits = [
                k
                for k in keys
                if k.startswith(pattern)
                or fnmatch.fnmatchcase(k, pattern)
                or fnmatch.fnmatchcase(specs[k], pattern)
            ]
            if not hits:
                raise CacheError(
                    f"no feature store entry matches {pattern!r}",
                    "list the entries with `python -m analyzer cache ls` and pass a key prefix or a spec glob",
                )
            chosen.extend(k for k in hits if k not in chosen)
        return chosen

    def _remove_unused(self, key: str) -> bool:
        """Delete ``key``'s entry unless a reader holds a lease on it; True when it was removed."""
        handle = None
        if fcntl is not None:
            try:
                handle = open(self.root / LOCKS_DIR / f"{key}.readers", "a+")  # noqa: SIM115
            except OSError:
                handle = None
        try:
            if handle is not None:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return False  # a running rank/probe reads it: leave it
            shutil.rmtree(self.entry_path(key), ignore_errors=True)
            return True
        finally:
            if handle is not None:
                handle.close()

    def rm(self, patterns: Iterable[str] = (), *, all: bool = False, stale: bool = False) -> list[str]:
        """Remove entries; return what was removed (keys, and paths of stale leftovers).

        ``patterns``: key prefixes or globs over keys/specs (see :meth:`match`); ``all``: every entry, partial
        shard and temp dir; ``stale``: temp dirs and partial shards no running process holds the lock of,
        and entries of another format version or with an unreadable meta.json. Entries being written by
        another process (lock held) and entries a process is reading (:meth:`in_use`) are skipped, not removed.
        """
        patterns = list(patterns)
        if not (patterns or all or stale):
            raise UsageError(
                "nothing to remove", "pass entry keys or spec globs, --all, or --stale (see `cache ls`)"
            )
        removed: list[str] = []
        keys = self.keys() if all else self.match(patterns) if patterns else []
        for key in keys:
            with self.lock(key):
                if not self._remove_unused(key):
                    continue
                self.clear_partial(key)
            removed.append(key)
        if stale or all:
            if stale and not all:
                for row in self.ls():
                    if not row["valid"] and not self._is_busy(row["key"]):
                        if self._remove_unused(row["key"]):
                            removed.append(row["key"])
            for tmp in list(self._temp_dirs()):
                key = tmp.name[len(TMP_PREFIX) :].split("-", 1)[0]
                if not self._is_busy(key):
                    shutil.rmtree(tmp, ignore_errors=True)
                    removed.append(str(tmp))
            if all:
                shutil.rmtree(self.root / MEMO_DIR, ignore_errors=True)
            pdir = self.root / PARTIAL_DIR
            if pdir.exists():
                for part in list(pdir.iterdir()):
                    if not self._is_busy(part.name):
                        shutil.rmtree(part, ignore_errors=True)
                        removed.append(str(part))
        return removed
