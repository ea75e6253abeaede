"""The dataset object every reader produces, the format registry, and the steps common to all formats.

A format reader (one module per format) turns a spec into a :class:`Table`: every row of the source with its
sample id, original label and an :class:`ImageLoader` that decodes row ``r`` to an RGB image. ``open_dataset``
then applies, in this order and identically for every format: the split filter, rows the reader already knows are
bad (missing file, empty label), deterministic stratified subsampling, decoding every selected image (corrupt or
truncated files), and finally the fingerprint over what is left. Adding a format is one module that calls
:func:`register_format`; nothing here changes.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from analyzer import contracts
from analyzer.config import check_max_per_class
from analyzer.errors import DatasetError
from analyzer.records import RecordCache

# Bump when the fingerprint payload changes shape, so no feature store entry keyed by an old one is ever served.
FINGERPRINT_VERSION = 1
# How many bad files an error message lists before summarising the rest.
MAX_LISTED = 20
SKIP_FIX = (
    "fix or remove these files, or pass --skip-bad (`skip_bad = true` in a rank config; skip_bad=True in "
    "Python) to drop them; dropped samples are listed as skipped"
)


# ----------------------------------------------------------------------------------------------------------------
# decoding
# ----------------------------------------------------------------------------------------------------------------
def to_rgb(image: Image.Image) -> Image.Image:
    """A loaded PIL image as an 8-bit RGB copy.

    Integer and float single-channel modes ("I;16", "I", "F") are rescaled to 0..255 first, because
    ``convert("RGB")`` would clip them to white; palette images with transparency go through RGBA so PIL does not
    warn. Alpha is dropped, as timm's and torchvision's loaders do.
    """
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = float(array.max()) if array.size else 0.0
        if image.mode.startswith("I;16") or 255 < top <= 65535:
            array = array / 257.0
        elif image.mode == "F" and top <= 1.0:
            array = array * 255.0
        image = Image.fromarray(np.clip(np.round(array), 0, 255).astype(np.uint8), "L")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    return image.convert("RGB")


def decode_file(source: str | os.PathLike[str] | Any) -> Image.Image:
    """Open, fully decode and convert one image (a path or a binary file object) to RGB.

    ``load()`` forces the whole decode, so a truncated or corrupt file raises here (``OSError`` /
    ``PIL.UnidentifiedImageError`` / ``SyntaxError`` from some plugins), not later inside a DataLoader worker.
    """
    with Image.open(source) as image:
        image.load()
        return to_rgb(image)


def array_to_image(array: np.ndarray) -> Image.Image:
    """One ``H×W`` or ``H×W×C`` (C in 1, 3, 4) uint8 array as an RGB PIL image (grey is repeated to RGB)."""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim == 2:
        return Image.fromarray(np.ascontiguousarray(array), "L").convert("RGB")
    if array.shape[2] == 3:
        return Image.fromarray(np.ascontiguousarray(array), "RGB")
    return Image.fromarray(np.ascontiguousarray(array), "RGBA").convert("RGB")


def check_image_array(images: np.ndarray, *, source: str) -> np.ndarray:
    """Validate an image stack (N×H×W or N×H×W×C, C in 1/3/4) and return it as uint8.

    Integer arrays whose values lie in 0..255 are accepted and cast; floats and out-of-range values are refused
    because guessing their scale (0..1? 0..255?) silently changes every feature.
    """
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] not in (1, 3, 4) and images.shape[1] in (1, 3, 4):
        raise DatasetError(
            f"{source}: images have shape {images.shape}, which looks channels-first (N×C×H×W)",
            "store them channels-last: np.transpose(images, (0, 2, 3, 1))",
        )
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
        raise DatasetError(
            f"{source}: images have shape {images.shape}; expected N×H×W (grey) or N×H×W×C with C = 1, 3 or 4",
            "reshape the image array to one of those layouts",
        )
    if images.dtype == np.uint8:
        return images
    if np.issubdtype(images.dtype, np.integer) or images.dtype == np.bool_:
        low, high = (int(images.min()), int(images.max())) if images.size else (0, 0)
        if low >= 0 and high <= 255:
            return images.astype(np.uint8)
        raise DatasetError(
            f"{source}: integer images range over {low}..{high}, outside 0..255",
            "rescale them to 0..255 and store them as uint8",
        )
    raise DatasetError(
        f"{source}: images have dtype {images.dtype}; 8-bit images (uint8, 0..255) are expected",
        "convert them, e.g. (images * 255).round().astype(np.uint8) for floats in 0..1",
    )


class ImageLoader(ABC):
    """Decodes row ``r`` of a source to an RGB image. Must stay picklable (DataLoader workers receive it)."""

    #: whether decoding can fail (files, encoded bytes) and so must be checked before extraction
    needs_check: bool = True

    @abstractmethod
    def load(self, row: int) -> Image.Image:
        """Row ``row`` of the source as an RGB PIL image."""

    def check(self, row: int) -> str | None:
        """``None`` when row ``row`` decodes, else the reason it does not (decodes fully: catches truncation)."""
        # PIL plugins raise OSError, ValueError, SyntaxError, struct.error...: every one of them means a bad file.
        try:
            self.load(row)
        except Exception as error:
            return f"cannot decode: {type(error).__name__}: {error}"
        return None

    @abstractmethod
    def fingerprint(self, rows: np.ndarray) -> Any:
        """A JSON-serialisable identity of the content of ``rows`` (file sizes and mtimes, or content hashes)."""


class FileLoader(ImageLoader):
    """Images stored as files: ``paths[r]`` resolved against ``root`` (absolute paths stay absolute)."""

    def __init__(self, root: Path, paths: Sequence[str]) -> None:
        self.root = Path(root)
        self.paths = list(paths)

    def file(self, row: int) -> Path:
        return self.root / self.paths[row]

    def load(self, row: int) -> Image.Image:
        return decode_file(self.file(row))

    def fingerprint(self, rows: np.ndarray) -> Any:
        # Sizes and nanosecond mtimes instead of content hashes: stat is ~1000× cheaper than reading every image,
        # and any rewrite of a file changes its mtime.
        listing = []
        for row in rows:
            stat = self.file(int(row)).stat()
            listing.append([self.paths[int(row)], stat.st_size, stat.st_mtime_ns])
        return {"files": listing}


class ArrayLoader(ImageLoader):
    """Images held in memory as a uint8 stack (N×H×W or N×H×W×C); decoding cannot fail."""

    needs_check = False

    def __init__(self, images: np.ndarray) -> None:
        self.images = images

    def load(self, row: int) -> Image.Image:
        return array_to_image(self.images[row])

    def check(self, row: int) -> str | None:
        return None

    def fingerprint(self, rows: np.ndarray) -> Any:
        digest = hashlib.sha256()
        digest.update(repr((self.images.dtype.str, self.images.shape[1:])).encode())
        # Hash row by row so a subsample never materialises a copy of the stack.
        for row in rows:
            digest.update(np.ascontiguousarray(self.images[int(row)]).tobytes())
        return {"pixels_sha256": digest.hexdigest()}


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
# labels
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


def _format_bad(bad: Sequence[tuple[str, str]]) -> str:
    lines = [f"  {sample_id}: {reason}" for sample_id, reason in bad[:MAX_LISTED]]
    if len(bad) > MAX_LISTED:
        lines.append(f"  ... and {len(bad) - MAX_LISTED} more")
    return "\n".join(lines)


def _raise_bad(spec: str, bad: Sequence[tuple[str, str]], what: str) -> None:
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
        _raise_bad(dataset.spec, bad, "unreadable image(s)")
    rows = np.array(
        [r for r, reason in zip(dataset._rows, reasons, strict=True) if not reason], dtype=np.int64
    )
    if len(rows) == 0:
        raise DatasetError(
            f"dataset {dataset.spec!r} has no readable image ({len(bad)} unreadable)",
            "check that the files are images PIL can open; re-export or re-download them",
        )
    return _build(
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


def _check_rows_remembered(
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


def _class_seed(value: Any) -> int:
    # A per-class seed from the class's own value: adding or removing another class never changes which samples
    # of this class are picked. crc32 (unlike hash()) is stable across processes.
    return zlib.crc32(f"{type(value).__name__}:{value}".encode())


def stratified_subsample(labels: np.ndarray, max_per_class: int, seed: int) -> np.ndarray:
    """Positions (sorted, so source order is kept) of at most ``max_per_class`` samples per class.

    Deterministic: class ``c`` draws with ``np.random.default_rng([seed, crc32(c)])``, so the same labels, cap and
    seed always give the same subset. Classes with at most ``max_per_class`` samples are kept whole.
    """
    check_max_per_class(max_per_class)
    keep: list[np.ndarray] = []
    classes, inverse = np.unique(labels, return_inverse=True)
    for k, value in enumerate(classes):
        members = np.flatnonzero(inverse.reshape(-1) == k)
        if len(members) > max_per_class:
            rng = np.random.default_rng(
                [seed, _class_seed(value.item() if hasattr(value, "item") else value)]
            )
            members = rng.choice(members, size=max_per_class, replace=False)
        keep.append(members)
    return np.sort(np.concatenate(keep)) if keep else np.zeros(0, dtype=np.int64)


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


def _fingerprint(payload: dict[str, Any]) -> str:
    text = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


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
    _refuse_continuous_labels(table, spec)

    rows = np.arange(n_rows)
    if split is not None and not table.split_applied:
        rows = _select_split(table, split, spec)

    skipped: list[tuple[str, str]] = []
    known_bad = {r: reason for r, reason in table.bad}
    bad_here = [(table.sample_ids[r], known_bad[r]) for r in map(int, rows) if r in known_bad]
    if bad_here:
        if not skip_bad:
            _raise_bad(spec, bad_here, "unusable sample(s)")
        skipped.extend(bad_here)
        rows = np.array([r for r in rows if r not in known_bad], dtype=np.int64)

    if max_per_class is not None and len(rows):
        rows = rows[stratified_subsample(table.labels[rows], max_per_class, seed)]

    checked = False
    if validate:
        reasons = _check_rows_remembered(table, rows, spec, check_cache)
        corrupt = [(table.sample_ids[r], reason) for r, reason in zip(rows, reasons, strict=True) if reason]
        if corrupt:
            if not skip_bad:
                _raise_bad(spec, corrupt, "unreadable image(s)")
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

    return _build(
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


def _refuse_continuous_labels(table: Table, spec: str) -> None:
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


def _build(
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
