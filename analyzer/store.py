"""The content-keyed feature store: one directory per (model, weights, preprocessing, layer, dataset) entry.

Layout under ``<cache>/features/``::

    <key>/                 a finished entry (only ever created by an atomic rename)
        index.faiss        faiss.IndexFlatL2 over the raw float32 features (N x D); doubles as the kNN structure
        labels.npy         N labels, the dataset's original values
        sample_ids.json    N sample ids, in row order
        source_probs.npy   N x Cs softmax of the source head (only when the backbone has one)
        meta.json          spec, key parts, versions, shapes, dtype, timings, creation time, device
    .tmp-<key>-<pid>-<rand>/   an entry being written; never read; removed on the next put of that key or by
                               ``rm(stale=True)`` once no process holds the key's lock
    partial/<key>/shard-<start>-<stop>.npz   finished shards of an interrupted extraction, reused on restart
    locks/<key>.lock       the per-key file lock (two processes extracting one entry: the second waits, then reuses)
    locks/<key>.readers    shared ``flock`` leases of the processes reading the entry: ``rm`` skips an entry in use
    specs/<hash>.json      what a model spec resolved to (weights id, preprocessing) and the stats of the local
                           files it depends on, so a store hit needs no model load (see analyzer.extract)

The key is a sha256 over a canonical JSON of :func:`key_parts`; any change to the model spec, the weights id,
the preprocessing, the feature layer, the dataset fingerprint (and its selected ids and labels) or
:data:`STORE_FORMAT_VERSION` gives a different key, so nothing stale is ever served.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fnmatch
import hashlib
import json
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

try:  # POSIX: shared reader leases (flock); elsewhere entries in use are not protected from `cache rm`
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

import faiss
import numpy as np
from filelock import FileLock, Timeout

from analyzer.errors import CacheError, UsageError
from analyzer.paths import CacheLayout, resolve_cache_dir
from analyzer.records import RecordCache

#: Bumped whenever the entry layout or the meaning of a key part changes; old entries then become misses
#: (and ``rm(stale=True)`` removes them).
STORE_FORMAT_VERSION = 1

INDEX_FILE = "index.faiss"
LABELS_FILE = "labels.npy"
IDS_FILE = "sample_ids.json"
PROBS_FILE = "source_probs.npy"
META_FILE = "meta.json"
TMP_PREFIX = ".tmp-"
PARTIAL_DIR = "partial"
LOCKS_DIR = "locks"
MEMO_DIR = "specs"


def _canonical(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: equal content gives equal text (and so equal hashes)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)


def hash_sequence(values: Iterable[Any]) -> str:
    """sha256 hex of a sequence of ids or labels (their ``str`` forms), order-sensitive."""
    h = hashlib.sha256()
    for v in values:
        h.update(str(v).encode("utf-8"))
        h.update(b"\0")  # a separator, so ["ab", "c"] and ["a", "bc"] differ
    return h.hexdigest()


def key_parts(
    *,
    spec: str,
    weights_id: str,
    preprocess: Mapping[str, Any],
    feature_layer: str | None,
    dataset_fingerprint: str,
    sample_ids: Sequence[Any],
    labels: Sequence[Any] | np.ndarray,
) -> dict[str, Any]:
    """Everything that determines an entry's content, as a JSON-able dict.

    ``sample_ids`` and ``labels`` enter as hashes: the dataset fingerprint covers the files, these cover the
    selection (``--max-per-class``/``--seed``) and the labels stored beside the features.
    """
    return {
        "spec": str(spec),
        "weights_id": str(weights_id),
        "preprocess": json.loads(_canonical(dict(preprocess))),
        "feature_layer": None if feature_layer is None else str(feature_layer),
        "dataset_fingerprint": str(dataset_fingerprint),
        "sample_ids_sha256": hash_sequence(sample_ids),
        "labels_sha256": hash_sequence(np.asarray(labels).tolist()),
        "format_version": STORE_FORMAT_VERSION,
    }


def make_key(parts: Mapping[str, Any]) -> str:
    """The entry key: sha256 hex (64 characters) of the canonical JSON of ``parts``."""
    return hashlib.sha256(_canonical(dict(parts)).encode("utf-8")).hexdigest()


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    # Directory fsync makes the rename itself durable; some filesystems refuse it, which is harmless here.
    with contextlib.suppress(OSError):
        _fsync_file(path)


def _fsync_all(paths: Sequence[Path]) -> None:
    """fsync several files at once: concurrent fsyncs share one journal commit (ext4 measured ~10x faster
    than one after another), which keeps the durable write of a small entry to a few milliseconds."""
    if len(paths) <= 1:
        for p in paths:
            _fsync_file(p)
        return
    with ThreadPoolExecutor(max_workers=len(paths)) as pool:
        list(pool.map(_fsync_file, paths))  # list(): re-raise the first error


def _dir_size(path: Path) -> int:
    total = 0
    for p in path.rglob("*"):
        with contextlib.suppress(OSError):
            if p.is_file():
                total += p.stat().st_size
    return total


def cache_parts_usage(cache_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Bytes in each top-level folder of the cache other than the feature store (``scores``, ``spectrum``,
    ``checks``, ``probe``, ``runs``, ``zoo``, ...), sorted by name; loose files count under ``(files)``."""
    root = Path(cache_dir)
    usage: dict[str, int] = {}
    if not root.is_dir():
        return usage
    loose = 0
    features = CacheLayout(root).features
    for child in sorted(root.iterdir()):
        if child == features:
            continue
        with contextlib.suppress(OSError):
            if child.is_dir():
                usage[child.name] = _dir_size(child)
            elif child.is_file():
                loose += child.stat().st_size
    if loose:
        usage["(files)"] = loose
    return usage


def human_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - the loop always returns


@dataclass
class FeatureEntry:
    """One finished store entry. Arrays load lazily from ``path`` and are cached on the object.

    ``features``: N x D float32 (recovered from the flat index); ``labels``: N original label values;
    ``sample_ids``: N strings; ``source_probs``: N x Cs float32 rows summing to 1, or None; ``meta``: meta.json.
    """

    key: str
    path: Path
    meta: dict[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    #: The open lease file holding a shared lock while this object lives (see :meth:`FeatureStore.in_use`).
    lease: Any = field(default=None, repr=False, compare=False)

    def index(self) -> faiss.IndexFlatL2:
        """The faiss flat L2 index over the raw features (exact kNN: ``index.search(queries, k)``)."""
        if "index" not in self._cache:
            try:
                self._cache["index"] = faiss.read_index(str(self.path / INDEX_FILE))
            except RuntimeError as exc:
                raise CacheError(
                    f"feature store entry {self.key} has an unreadable index ({exc})",
                    f"remove it with `python -m analyzer cache rm {self.key[:12]}` and extract again",
                ) from exc
        return self._cache["index"]

    @property
    def features(self) -> np.ndarray:
        """N x D float32 feature matrix."""
        if "features" not in self._cache:
            index = self.index()
            feats = (
                index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)
            )
            self._cache["features"] = np.ascontiguousarray(feats, dtype=np.float32)
        return self._cache["features"]

    @property
    def labels(self) -> np.ndarray:
        """N labels (the dataset's original values)."""
        if "labels" not in self._cache:
            self._cache["labels"] = np.load(self.path / LABELS_FILE, allow_pickle=False)
        return self._cache["labels"]

    @property
    def sample_ids(self) -> list[str]:
        """N sample ids, aligned with the rows of ``features``."""
        if "sample_ids" not in self._cache:
            self._cache["sample_ids"] = json.loads((self.path / IDS_FILE).read_text("utf-8"))
        return self._cache["sample_ids"]

    @property
    def source_probs(self) -> np.ndarray | None:
        """N x Cs source-class probabilities (softmax of the backbone's head), or None without a head."""
        if "source_probs" not in self._cache:
            p = self.path / PROBS_FILE
            self._cache["source_probs"] = np.load(p, allow_pickle=False) if p.exists() else None
        return self._cache["source_probs"]

    @property
    def spec(self) -> str:
        return str(self.meta.get("spec", ""))

    @property
    def num_samples(self) -> int:
        return int(self.meta.get("n_samples", 0))

    @property
    def feature_dim(self) -> int:
        return int(self.meta.get("feature_dim", 0))


@dataclass
class StoreUsage:
    """Bytes used by the store: per finished entry, plus partial shards and leftover temp dirs."""

    entries: dict[str, int]
    partial: int
    temp: int

    @property
    def total(self) -> int:
        return sum(self.entries.values()) + self.partial + self.temp


class FeatureStore:
    """The feature store under ``<cache_dir>/features/``.

    ``FeatureStore(cache_dir)`` takes the cache directory (``data_cache/`` by default; pass None to resolve it
    with :func:`analyzer.paths.resolve_cache_dir`, i.e. ``--cache-dir`` > ``$ANALYZER_CACHE_DIR`` >
    ``data_cache/``); entries live in its ``features/`` subdirectory (``self.root``).
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
            if p.is_dir() and not p.name.startswith(".") and p.name not in (PARTIAL_DIR, LOCKS_DIR, MEMO_DIR)
        )

    def __contains__(self, key: str) -> bool:
        return (self.entry_path(key) / META_FILE).is_file()

    def get(self, key: str) -> FeatureEntry | None:
        """The finished entry for ``key``, or None on a miss. Raises CacheError for an entry that fails its checks."""
        path = self.entry_path(key)
        meta_path = path / META_FILE
        if not meta_path.is_file():
            return None
        lease = self._lease(key)  # `cache rm` skips the entry while this lease lives
        if not meta_path.is_file():  # removed while we waited for the lease: a miss, extracted again
            if lease is not None:
                lease.close()
            return None
        fix = f"remove it with `python -m analyzer cache rm {key[:12]}` and extract again"
        try:
            meta = json.loads(meta_path.read_text("utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise CacheError(f"feature store entry {key} has an unreadable meta.json ({exc})", fix) from exc
        if meta.get("format_version") != STORE_FORMAT_VERSION or meta.get("key") != key:
            # An entry written by another format version can never be this key's content; treat as a miss.
            return None
        missing = [n for n in (INDEX_FILE, LABELS_FILE, IDS_FILE) if not (path / n).is_file()]
        if meta.get("has_source_probs") and not (path / PROBS_FILE).is_file():
            missing.append(PROBS_FILE)
        if missing:
            raise CacheError(f"feature store entry {key} is missing {', '.join(missing)}", fix)
        return FeatureEntry(key=key, path=path, meta=meta, lease=lease)

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
                (tmp / META_FILE).write_text(json.dumps(full_meta, indent=1, default=str), "utf-8")
                _fsync_all([*tmp.iterdir(), tmp])
                final = self.entry_path(key)
                os.rename(tmp, final)
                _fsync_dir(self.root)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
        entry = self.get(key)
        assert entry is not None  # just renamed into place under the lock
        return entry

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
        _fsync_dir(pdir)
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
                    "bytes": _dir_size(path),
                    "created": meta.get("created"),
                    "extraction_seconds": (meta.get("timings") or {}).get("extraction_seconds"),
                    "valid": meta.get("format_version") == STORE_FORMAT_VERSION and meta.get("key") == key,
                    # damaged: meta.json missing or unreadable (not merely written by another format version)
                    "damaged": damaged,
                }
            )
        return rows

    def du(self) -> StoreUsage:
        """Disk usage in bytes: per entry, partial shards and leftover temp dirs."""
        entries = {key: _dir_size(self.entry_path(key)) for key in self.keys()}
        partial = _dir_size(self.root / PARTIAL_DIR) if (self.root / PARTIAL_DIR).exists() else 0
        temp = sum(_dir_size(p) for p in self._temp_dirs())
        return StoreUsage(entries=entries, partial=partial, temp=temp)

    def _temp_dirs(self, key: str | None = None) -> Iterator[Path]:
        prefix = TMP_PREFIX + (key or "")
        if self.root.exists():
            yield from (p for p in self.root.iterdir() if p.name.startswith(prefix))

    def _remove_temp_dirs(self, key: str) -> None:
        for p in self._temp_dirs(key):
            shutil.rmtree(p, ignore_errors=True)

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
