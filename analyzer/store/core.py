"""The store's reading and writing half: per-key locks, reader leases, get/put of entries, partial shards,
spec memos. Layout and guarantees: see :mod:`analyzer.store`."""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import shutil
import sys
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

try:  # POSIX: shared reader leases (flock); elsewhere entries in use are not protected from `cache rm`
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

import faiss
import numpy as np
from filelock import FileLock, Timeout

from analyzer.errors import CacheError
from analyzer.limits import human
from analyzer.paths import CacheLayout, resolve_cache_dir
from analyzer.records import RecordCache
from analyzer.store.entry import FeatureEntry
from analyzer.store.files import (
    IDS_FILE,
    INDEX_FILE,
    LABELS_FILE,
    LOCKS_DIR,
    MEMO_DIR,
    META_FILE,
    PARTIAL_DIR,
    PROBS_FILE,
    TMP_PREFIX,
    fsync_all,
    fsync_dir,
)
from analyzer.store.integrity import (
    QUARANTINE_DIR,
    checksums,
    entry_files,
    quarantine,
    read_meta,
    remember_verified,
    verify_once,
)
from analyzer.store.keys import STORE_FORMAT_VERSION


class StoreCore:
    """Entries under ``<cache_dir>/features/``: locks, leases, get/put, shards, memos.

    :class:`analyzer.store.FeatureStore` adds inspection and pruning (``cache ls``/``du``/``rm``); use that.
    """

    def __init__(self, cache_dir: str | os.PathLike[str] | None = None, *, create: bool = True) -> None:
        # create=False only inspects (`cache ls`/`du`/`rm`): a cache dir that does not exist stays absent
        self.cache_dir = resolve_cache_dir(cache_dir, create=create)
        self.root = CacheLayout(self.cache_dir).features
        self._locks: dict[str, FileLock] = {}
        if not create:
            return
        fix = "pass a writable directory with --cache-dir DIR (or set $ANALYZER_CACHE_DIR)"
        try:
            (self.root / LOCKS_DIR).mkdir(parents=True, exist_ok=True)
            (self.root / PARTIAL_DIR).mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"cannot create the feature store at {self.root} ({exc.strerror or exc})", fix
            ) from exc
        for folder in (self.root, self.root / LOCKS_DIR, self.root / PARTIAL_DIR):
            if not os.access(folder, os.W_OK | os.X_OK):
                raise CacheError(f"the cache dir {self.cache_dir} is not writable ({folder})", fix)

    # -- keys and locks ------------------------------------------------------------------------------------
    def lock(self, key: str) -> FileLock:
        """The per-key file lock (reentrant within a thread). Hold it while extracting or writing ``key``."""
        if key not in self._locks:
            self._locks[key] = FileLock(str(self.root / LOCKS_DIR / f"{key}.lock"))
        return self._locks[key]

    def _is_busy(self, key: str) -> bool:
        """True when another process holds ``key``'s lock right now."""
        probe = FileLock(str(self.root / LOCKS_DIR / f"{key}.lock"), timeout=0, thread_local=False)
        try:
            probe.acquire()
        except Timeout:
            return True
        probe.release()
        return False

    def _lease(self, key: str) -> Any:
        """Open ``locks/<key>.readers`` and take a shared lock on it; the lock lives as long as the file object.

        None where leases are impossible (no ``fcntl``, a read-only cache): the entry is then read unprotected.
        """
        if fcntl is None:
            return None
        try:
            handle = open(self.root / LOCKS_DIR / f"{key}.readers", "a+")  # noqa: SIM115 - held by the entry
        except OSError:
            return None
        fcntl.flock(handle, fcntl.LOCK_SH)  # waits while `rm` (exclusive) removes the entry
        return handle

    def in_use(self, key: str) -> bool:
        """True when a process (this one included) holds a :class:`FeatureEntry` of ``key`` right now."""
        if fcntl is None:
            return False
        try:
            with open(self.root / LOCKS_DIR / f"{key}.readers", "a+") as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    return True
                fcntl.flock(handle, fcntl.LOCK_UN)
        except OSError:
            return False
        return False

    def entry_path(self, key: str) -> Path:
        return self.root / key

    def partial_dir(self, key: str) -> Path:
        """Where an interrupted extraction of ``key`` keeps its finished shards."""
        return self.root / PARTIAL_DIR / key

    # -- read ----------------------------------------------------------------------------------------------
    def keys(self) -> list[str]:
        """Keys of the finished entries, sorted."""
        if not self.root.exists():
            return []
        return sorted(
            p.name
            for p in self.root.iterdir()
            if p.is_dir()
            and not p.name.startswith(".")
            and p.name not in (PARTIAL_DIR, LOCKS_DIR, MEMO_DIR, QUARANTINE_DIR)
        )

    def __contains__(self, key: str) -> bool:
        return (self.entry_path(key) / META_FILE).is_file()

    def get(self, key: str) -> FeatureEntry | None:
        """The finished entry for ``key``, or None on a miss.

        The first read of an entry in a process checks every file against the checksum written with it
        (:mod:`analyzer.store.integrity`); an entry that fails (unreadable meta.json, a missing file, a file that
        changed) is moved into ``quarantine/``, said on stderr, and read as a miss, so it is extracted again.
        Raises CacheError only when a damaged entry cannot be moved aside (a read-only cache).
        """
        path = self.entry_path(key)
        meta_path = path / META_FILE
        if not path.is_dir():
            return None
        lease = self._lease(key)  # `cache rm` skips the entry while this lease lives
        if not path.is_dir():  # removed while we waited for the lease: a miss, extracted again
            if lease is not None:
                lease.close()
            return None
        meta, unreadable = read_meta(path) if meta_path.exists() else (None, "its meta.json is missing")
        if meta is not None and (
            meta.get("format_version") != STORE_FORMAT_VERSION or meta.get("key") != key
        ):
            # An entry of another format version (older ones recorded no checksums) can never be this key's
            # content; a miss, extracted again under the same key's new format (`cache rm --stale` removes it).
            if lease is not None:
                lease.close()
            return None
        problems = [unreadable] if meta is None else verify_once(path, meta)
        if problems:
            if lease is not None:
                lease.close()
            self.set_aside(key, "; ".join(p for p in problems if p))
            return None
        assert meta is not None
        return FeatureEntry(key=key, path=path, meta=meta, lease=lease)

    def set_aside(self, key: str, reason: str) -> Path | None:
        """Move the damaged entry ``key`` into ``quarantine/`` (nothing is deleted) and say so on stderr; its next
        read is a miss. Returns where it went (None: another process moved it first)."""
        try:
            target = quarantine(self.root, key, reason)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise CacheError(
                f"feature store entry {key} is damaged ({reason}) and cannot be moved aside "
                f"({exc.strerror or exc})",
                f"make the cache dir {self.cache_dir} writable (the next run sets the entry aside and extracts "
                "it again), or pass another --cache-dir",
            ) from exc
        print(
            f"warning: feature store entry {key[:12]} is damaged ({reason}); it is not used: moved to {target} "
            "and extracted again",
            file=sys.stderr,
        )
        return target

    # -- write ---------------------------------------------------------------------------------------------
    def put(
        self,
        key: str,
        *,
        features: np.ndarray,
        labels: np.ndarray | Sequence[Any],
        sample_ids: Sequence[str],
        source_probs: np.ndarray | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> FeatureEntry:
        """Write an entry atomically (temp dir, fsync, rename) and return it.

        ``features``: N x D finite float32 (cast if needed); ``labels`` and ``sample_ids``: length N;
        ``source_probs``: N x Cs or None. If the key already exists (a concurrent writer won), the existing
        entry is returned and nothing is overwritten.
        """
        feats = np.ascontiguousarray(np.asarray(features, dtype=np.float32))
        if feats.ndim != 2:
            raise ValueError(f"features must be N x D, got shape {feats.shape}; reshape before storing")
        n, d = feats.shape
        labels_arr = np.asarray(labels)
        ids = [str(s) for s in sample_ids]
        if len(labels_arr) != n or len(ids) != n:
            raise ValueError(
                f"features have {n} rows but labels have {len(labels_arr)} and sample_ids {len(ids)}; "
                "pass one label and one id per feature row"
            )
        if not np.isfinite(feats).all():
            raise ValueError(
                "features contain NaN or inf; they are not stored (check the model and its inputs)"
            )
        probs = None
        if source_probs is not None:
            probs = np.ascontiguousarray(np.asarray(source_probs, dtype=np.float32))
            if probs.ndim != 2 or probs.shape[0] != n:
                raise ValueError(f"source_probs must be {n} x Cs, got shape {probs.shape}")
        if labels_arr.dtype == object:
            # np.save without pickle cannot hold Python objects; labels are ids or class names, so strings do.
            labels_arr = labels_arr.astype(str)

        with self.lock(key):
            existing = self.get(key)
            if existing is not None:
                return existing
            self._remove_temp_dirs(key)  # leftovers of a killed writer of this key; we hold its lock
            needed = feats.nbytes + (probs.nbytes if probs is not None else 0) + labels_arr.nbytes
            self._check_space(needed, str((meta or {}).get("spec") or key[:12]))
            tmp = self.root / f"{TMP_PREFIX}{key}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir(parents=True)
            try:
                index = faiss.IndexFlatL2(d)
                if n:
                    index.add(feats)
                faiss.write_index(index, str(tmp / INDEX_FILE))
                np.save(tmp / LABELS_FILE, labels_arr, allow_pickle=False)
                (tmp / IDS_FILE).write_text(json.dumps(ids), "utf-8")
                if probs is not None:
                    np.save(tmp / PROBS_FILE, probs, allow_pickle=False)
                full_meta = dict(meta or {})
                full_meta.update(
                    key=key,
                    format_version=STORE_FORMAT_VERSION,
                    n_samples=int(n),
                    feature_dim=int(d),
                    dtype="float32",
                    has_source_probs=probs is not None,
                    n_source_classes=None if probs is None else int(probs.shape[1]),
                    label_dtype=str(labels_arr.dtype),
                )
                full_meta.setdefault("created", _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
                # what every file must hash to when read (analyzer.store.integrity); meta.json itself is
                # checked by parsing and by its key
                full_meta["checksums"] = checksums(tmp, entry_files(full_meta))
                (tmp / META_FILE).write_text(json.dumps(full_meta, indent=1, default=str), "utf-8")
                fsync_all([*tmp.iterdir(), tmp])
                final = self.entry_path(key)
                os.rename(tmp, final)
                fsync_dir(self.root)
                remember_verified(final, full_meta)  # just hashed what it wrote
            except (OSError, RuntimeError) as exc:
                shutil.rmtree(tmp, ignore_errors=True)
                # faiss reports a full disk as a RuntimeError of its own ("write error ... ret=...")
                if isinstance(exc, OSError) and exc.errno != errno.ENOSPC and exc.errno != errno.EDQUOT:
                    raise
                self._check_space(needed, str((meta or {}).get("spec") or key[:12]), cause=exc)
                raise
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        entry = self.get(key)
        assert entry is not None  # just renamed into place under the lock
        return entry

    def _check_space(self, needed: int, what: str, cause: BaseException | None = None) -> None:
        """Raise CacheError (the fix: free space or another --cache-dir) when the store's disk cannot take
        ``needed`` bytes more (with a margin), or when ``cause`` is the disk running out while writing."""
        free = shutil.disk_usage(self.root).free
        if cause is None and free >= needed * 1.1 + 2**20:
            return
        if cause is not None and free >= needed * 1.1 + 2**20 and "space" not in str(cause).lower():
            return  # not a full disk: the caller re-raises the original error
        raise CacheError(
            f"no space left in the cache dir {self.cache_dir} for the features of {what} "
            f"(about {human(needed)} needed, {human(free)} free); nothing was stored",
            "free space on that disk (`python -m analyzer cache du`, `cache rm --stale`) or pass --cache-dir on a "
            "larger disk; finished candidates stay cached",
        ) from cause

    # -- partial shards ------------------------------------------------------------------------------------
    @staticmethod
    def shard_name(start: int, stop: int) -> str:
        return f"shard-{start:09d}-{stop:09d}.npz"

    def save_shard(
        self, key: str, start: int, stop: int, features: np.ndarray, source_probs: np.ndarray | None
    ) -> Path:
        """Save rows ``[start, stop)`` of an extraction in progress, atomically (temp file, fsync, rename)."""
        pdir = self.partial_dir(key)
        pdir.mkdir(parents=True, exist_ok=True)
        final = pdir / self.shard_name(start, stop)
        tmp = pdir / f"{TMP_PREFIX}{final.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        # Any: numpy's stub also offers savez's allow_pickle flag to ** keywords, which a dict of arrays is not
        arrays: dict[str, Any] = {"features": np.asarray(features, dtype=np.float32)}
        if source_probs is not None:
            arrays["source_probs"] = np.asarray(source_probs, dtype=np.float32)
        try:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise
        fsync_dir(pdir)
        return final

    def load_shard(self, key: str, start: int, stop: int) -> tuple[np.ndarray, np.ndarray | None] | None:
        """A finished shard ``(features, source_probs or None)``, or None when absent or unreadable."""
        path = self.partial_dir(key) / self.shard_name(start, stop)
        if not path.is_file():
            return None
        try:
            with np.load(path, allow_pickle=False) as z:
                feats = z["features"]
                probs = z["source_probs"] if "source_probs" in z.files else None
        except (OSError, ValueError, KeyError, EOFError):
            return None  # a damaged shard is recomputed, never trusted
        if feats.ndim != 2 or feats.shape[0] != stop - start:
            return None
        return feats, probs

    def clear_partial(self, key: str) -> None:
        shutil.rmtree(self.partial_dir(key), ignore_errors=True)

    # -- spec memos -----------------------------------------------------------------------------------------
    def read_memo(self, name: str) -> dict[str, Any] | None:
        """A small JSON record saved with :meth:`write_memo`, or None when absent or unreadable."""
        data = RecordCache(self.root / MEMO_DIR).get(name)
        return data if isinstance(data, dict) else None

    def write_memo(self, name: str, data: Mapping[str, Any]) -> None:
        """Save a small JSON record atomically: readers see the old or the new one."""
        RecordCache(self.root / MEMO_DIR).put(name, dict(data))

    def _temp_dirs(self, key: str | None = None) -> Iterator[Path]:
        prefix = TMP_PREFIX + (key or "")
        if self.root.exists():
            yield from (p for p in self.root.iterdir() if p.name.startswith(prefix))

    def _remove_temp_dirs(self, key: str) -> None:
        for p in self._temp_dirs(key):
            shutil.rmtree(p, ignore_errors=True)
