"""Batched, resumable, cached extraction of frozen features: dataset x backbone -> :class:`FeatureEntry`.

The cache key is computed before any forward pass (from the backbone's spec, weights id and preprocessing, the
feature layer and the dataset fingerprint), so a store hit runs the model zero times. A miss extracts under the
key's file lock (a concurrent process extracting the same entry waits, then reuses the result), in shards saved
atomically under ``partial/<key>/`` so a killed run resumes where it stopped, and writes the entry atomically.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from filelock import Timeout
from PIL import Image

from analyzer.contracts import Backbone, Dataset
from analyzer.device import resolve_device
from analyzer.errors import AnalyzerError, BackboneError, DatasetError, DeviceError, describe
from analyzer.specs import split_spec
from analyzer.store import FeatureEntry, FeatureStore, key_parts, make_key

#: Rows per resumable shard. Small enough that a killed run loses little, large enough that shard I/O is noise.
DEFAULT_SHARD_SIZE = 2048


def _versions() -> dict[str, str]:
    import faiss

    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "faiss": getattr(faiss, "__version__", "unknown"),
    }
    for name in ("timm", "torchvision", "transformers"):
        module = sys.modules.get(name)
        if module is not None:
            versions[name] = getattr(module, "__version__", "unknown")
    if "timm" not in versions:
        with contextlib.suppress(ImportError):
            import timm

            versions["timm"] = timm.__version__
    return versions


# -- an in-memory dataset of already-preprocessed tensors ------------------------------------------------------
@dataclass
class PreprocessedDataset:
    """A dataset whose images are already decoded and preprocessed: ``tensors`` is N x C x H x W float32.

    Extraction slices it directly (no decoding, no transform, no DataLoader), which is how the benchmark
    measures the extraction overhead over a bare forward loop on the same tensors. Build one with
    :func:`predecode`. ``fingerprint`` is a content hash of the tensors, so the cache key stays honest.
    """

    tensors: torch.Tensor
    labels: np.ndarray
    sample_ids: list[str]
    name: str = "tensors"
    spec: str = "<in-memory tensors>"
    class_names: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    fingerprint: str = ""
    problems: list[str] = field(default_factory=list)
    #: the images were decoded when the tensors were made
    checked: bool = True

    def __post_init__(self) -> None:
        if self.tensors.ndim != 4:
            raise ValueError(f"tensors must be N x C x H x W, got shape {tuple(self.tensors.shape)}")
        if not (len(self.tensors) == len(self.labels) == len(self.sample_ids)):
            raise ValueError(
                "tensors, labels and sample_ids must have the same length; pass one of each per image"
            )
        if not self.fingerprint:
            h = hashlib.sha256(self.tensors.detach().cpu().contiguous().numpy().tobytes())
            h.update(np.asarray(self.labels).tobytes())
            self.fingerprint = "tensors-" + h.hexdigest()

    def __len__(self) -> int:
        return len(self.tensors)

    def load_image(self, i: int) -> Image.Image:
        """Always raises: the contract's method, but there is no image to give back."""
        raise DatasetError(
            "a PreprocessedDataset holds tensors, not images",
            "use the original dataset for anything that needs PIL images",
        )

    def to_dict(self) -> dict[str, Any]:
        """The report's ``dataset`` block, as :meth:`analyzer.datasets.Dataset.to_dict` gives it."""
        return {
            "spec": self.spec,
            "fingerprint": self.fingerprint,
            "n_samples": len(self),
            "n_classes": len(self.class_names),
            "class_names": list(self.class_names),
            "skipped": [[sample_id, reason] for sample_id, reason in self.skipped],
        }


def predecode(dataset: Dataset, backbone: Backbone) -> PreprocessedDataset:
    """Decode and preprocess every image of ``dataset`` with ``backbone.preprocess`` once, into memory."""
    transform = backbone.preprocess.transform()
    tensors = torch.stack([transform(dataset.load_image(i)) for i in range(len(dataset))])
    return PreprocessedDataset(
        tensors=tensors,
        labels=np.asarray(dataset.labels),
        sample_ids=list(dataset.sample_ids),
        name=f"{dataset.name} (pre-decoded)",
        spec=str(dataset.spec),
        class_names=list(dataset.class_names),
        skipped=list(dataset.skipped),
        fingerprint=f"{dataset.fingerprint}+pre:{hashlib.sha256(str(backbone.preprocess.to_dict()).encode()).hexdigest()[:16]}",
    )


class _Images(torch.utils.data.Dataset):
    """The rows ``positions`` of a dataset, decoded and preprocessed; yields ``(tensor, position)``."""

    def __init__(
        self, dataset: Dataset, positions: Sequence[int], transform: Callable[[Image.Image], torch.Tensor]
    ) -> None:
        self.dataset = dataset
        self.positions = list(positions)
        self.transform = transform

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, j: int) -> tuple[torch.Tensor, int]:
        i = self.positions[j]
        try:
            image = self.dataset.load_image(i)
        except AnalyzerError:
            raise
        except Exception as exc:  # noqa: BLE001 - any decoder failure becomes a message naming the file
            raise DatasetError(
                f"cannot read image {self.dataset.sample_ids[i]} ({type(exc).__name__}: {exc})",
                "fix or delete the file, or rerun with --skip-bad to skip unreadable images (rank, extract and "
                "probe take it)",
            ) from exc
        return self.transform(image), i


# -- keys ------------------------------------------------------------------------------------------------------
def entry_key_parts(dataset: Dataset, backbone: Backbone) -> dict[str, Any]:
    """The store key parts for ``backbone`` over ``dataset`` (no forward pass)."""
    return _key_parts_from(
        dataset,
        spec=backbone.spec,
        weights_id=backbone.weights_id,
        preprocess=backbone.preprocess.to_dict(),
        feature_layer=backbone.feature_layer,
    )


def _key_parts_from(
    dataset: Dataset, *, spec: str, weights_id: str, preprocess: dict[str, Any], feature_layer: str | None
) -> dict[str, Any]:
    return key_parts(
        spec=spec,
        weights_id=weights_id,
        preprocess=preprocess,
        feature_layer=feature_layer,
        dataset_fingerprint=dataset.fingerprint,
        sample_ids=dataset.sample_ids,
        labels=dataset.labels,
    )


# -- resolving a spec without loading it -----------------------------------------------------------------------
def _spec_dependencies(spec: str, weights_path: str | None) -> list[Path] | None:
    """The local files a spec's weights id and preprocessing come from, or None for a hub-only spec.

    Every existing path named in the spec (``torchscript:PATH``, ``timm:ARCH@PATH``, ``hf:DIR``), the sidecars a
    source may read beside a file (``PATH.json`` with either suffix rule, present or not: one appearing later
    changes the preprocessing), every file of a named directory, and the backbone's ``weights_path``.
    """
    named = [Path(t).expanduser() for t in split_spec(spec).named_paths()]
    paths = [p.resolve() for p in named if p.exists()]
    if not paths:
        return None  # a hub model: only loading it can tell which revision the hub cache holds
    deps: set[Path] = set()
    for path in paths:
        if path.is_dir():
            deps.update(p for p in path.rglob("*") if p.is_file())
        else:
            deps.update((path, path.with_suffix(".json"), path.with_name(path.name + ".json")))
    if weights_path:
        deps.add(Path(weights_path).resolve())
    return sorted(deps)


def _stat_listing(paths: Sequence[Path]) -> list[list[Any]]:
    listing = []
    for path in paths:
        try:
            stat = path.stat()
            listing.append([str(path), stat.st_size, stat.st_mtime_ns])
        except OSError:
            listing.append([str(path), None, None])  # absence is part of the state too
    return listing


def _memo_name(spec: str, overrides: dict[str, Any]) -> str:
    from analyzer import __version__

    text = repr((str(spec), sorted((k, repr(v)) for k, v in overrides.items()), __version__))
    return hashlib.sha256(text.encode()).hexdigest()


def _recall_resolution(store: FeatureStore, spec: str, overrides: dict[str, Any]) -> dict[str, Any] | None:
    """What ``spec`` resolved to last time, if none of the local files it depends on changed since."""
    memo = store.read_memo(_memo_name(spec, overrides))
    if not memo or memo.get("spec_typed") != str(spec):
        return None
    deps = _spec_dependencies(spec, memo.get("weights_path"))
    if deps is None or _stat_listing(deps) != memo.get("files"):
        return None
    return memo


def _remember_resolution(
    store: FeatureStore, spec: str, overrides: dict[str, Any], backbone: Backbone
) -> None:
    deps = _spec_dependencies(spec, backbone.weights_path)
    if deps is None:
        return
    store.write_memo(
        _memo_name(spec, overrides),
        {
            "spec_typed": str(spec),
            "spec": backbone.spec,
            "weights_id": backbone.weights_id,
            "preprocess": backbone.preprocess.to_dict(),
            "feature_layer": backbone.feature_layer,
            "weights_path": backbone.weights_path,
            "files": _stat_listing(deps),
        },
    )


def _load_backbone(spec: str, device: torch.device, **overrides: Any) -> Backbone:
    from analyzer.sources import load_backbone

    return load_backbone(spec, device=str(device), **overrides)


def _validate_dataset(dataset: Dataset, skip_bad: bool | None) -> Dataset:
    """``dataset`` with every image checked (the dataset layer's check), bad ones dropped with ``skip_bad``.

    A dataset opened with ``validate=True`` is already checked and comes back as is (no decoding here).
    """
    if not dataset.checked:
        from analyzer.datasets.checks import validate_dataset
        from analyzer.datasets.dataset import Dataset as OpenedDataset

        if not isinstance(dataset, OpenedDataset):
            raise TypeError(
                f"{type(dataset).__name__} says its images are unchecked, but only an opened dataset "
                "(analyzer.datasets.Dataset) can be validated here; check the images before extracting"
            )
        dataset = validate_dataset(dataset, skip_bad=skip_bad)
    if len(dataset) == 0:
        raise DatasetError(
            f"dataset {dataset.spec!r} has no samples to extract",
            "check the path, the split and --max-per-class",
        )
    return dataset


# -- extraction ------------------------------------------------------------------------------------------------
def extract_features(
    dataset: Dataset,
    spec_or_backbone: str | Backbone,
    *,
    store: FeatureStore,
    device: str | torch.device | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    feature_layer: str | int | None = None,
    image_size: int | Sequence[int] | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
    progress: bool = True,
    amp: bool = True,
    shard_size: int = DEFAULT_SHARD_SIZE,
    skip_bad: bool | None = None,
) -> FeatureEntry:
    """Features of ``dataset`` under a backbone, from the store when present, else extracted and stored.

    ``spec_or_backbone``: a model spec string (loaded with ``analyzer.sources.load_backbone`` and the
    ``feature_layer``/``image_size``/``mean``/``std`` overrides) or a loaded Backbone. ``device``: None
    auto-detects (CUDA if available). ``num_workers``: DataLoader workers, None picks from the CPU count.
    ``amp``: autocast (float16) on CUDA. ``skip_bad``: for a dataset opened unchecked (``validate=False``),
    drop unreadable images instead of stopping with their list (None: the option it was opened with).
    ``shard_size``: rows per resumable shard. Returns an entry with ``features`` N x D float32 (row i is
    ``dataset.sample_ids[i]``), ``labels``, ``source_probs`` (N x Cs or None) and ``meta``.

    Raises BackboneError when the model produces NaN/inf features (nothing is stored) and DatasetError for
    an unreadable image (with its path).
    """
    if batch_size < 1:
        raise AnalyzerError(f"batch size must be at least 1, got {batch_size}", "pass --batch-size 1 or more")
    if shard_size < 1:
        raise ValueError(f"shard_size must be at least 1, got {shard_size}")
    dataset = _validate_dataset(dataset, skip_bad)
    dev = resolve_device(device)
    overrides = {"feature_layer": feature_layer, "image_size": image_size, "mean": mean, "std": std}
    if isinstance(spec_or_backbone, str):
        # A spec seen before, whose local files are unchanged: its key without loading the model at all.
        memo = _recall_resolution(store, spec_or_backbone, overrides)
        if memo is not None:
            fields = ("spec", "weights_id", "preprocess", "feature_layer")
            hit = store.get(make_key(_key_parts_from(dataset, **{f: memo[f] for f in fields})))
            if hit is not None:
                return hit
    t0 = time.perf_counter()
    loaded_on: torch.device | None  # where this call loaded the model; None: the caller's backbone
    if isinstance(spec_or_backbone, str):
        # Load on the CPU first: enough to compute the key; a hit never moves anything to the GPU.
        backbone = _load_backbone(spec_or_backbone, torch.device("cpu"), **overrides)
        loaded_on = torch.device("cpu")
        _remember_resolution(store, spec_or_backbone, overrides, backbone)
    else:
        if any(v is not None for v in overrides.values()):
            raise AnalyzerError(
                "feature_layer/image_size/mean/std apply when loading a model spec, not to a loaded backbone",
                "pass the spec string instead, or load the backbone with those options",
            )
        backbone = spec_or_backbone
        loaded_on = None
    load_seconds = time.perf_counter() - t0

    parts = entry_key_parts(dataset, backbone)
    key = make_key(parts)
    hit = store.get(key)
    if hit is not None:
        return hit

    lock = store.lock(key)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        if progress:
            print(
                f"{backbone.spec}: another process is extracting this entry; waiting for it", file=sys.stderr
            )
        lock.acquire()
    try:
        hit = store.get(key)  # the process we waited for may have finished it
        if hit is not None:
            return hit
        if isinstance(spec_or_backbone, str) and loaded_on != dev:
            t1 = time.perf_counter()
            backbone = _load_backbone(spec_or_backbone, dev, **overrides)
            load_seconds += time.perf_counter() - t1
        return _extract_locked(
            dataset,
            backbone,
            key=key,
            parts=parts,
            store=store,
            device=dev if loaded_on is not None else _module_device(backbone, dev),
            batch_size=batch_size,
            num_workers=num_workers,
            progress=progress,
            amp=amp,
            shard_size=shard_size,
            load_seconds=load_seconds,
        )
    finally:
        lock.release()


def _module_device(backbone: Backbone, default: torch.device) -> torch.device:
    """Where a caller-loaded backbone's parameters live (its inputs must go there too)."""
    module = backbone.module
    if isinstance(module, torch.nn.Module):
        for parameter in module.parameters():
            return parameter.device
        for buffer in module.buffers():
            return buffer.device
    return default


def _shards(n: int, shard_size: int) -> list[tuple[int, int]]:
    return [(s, min(s + shard_size, n)) for s in range(0, n, shard_size)]


def _batches(
    dataset: Dataset,
    positions: list[int],
    transform: Callable[[Image.Image], torch.Tensor] | None,
    *,
    batch_size: int,
    num_workers: int | None,
    device: torch.device,
) -> Iterator[torch.Tensor]:
    """Preprocessed input batches for ``positions`` (consecutive, in order), on ``device``."""
    if isinstance(dataset, PreprocessedDataset):
        # Pre-decoded tensors: contiguous slices, no per-sample Python and no collation.
        pos = torch.as_tensor(positions)
        for s in range(0, len(positions), batch_size):
            idx = pos[s : s + batch_size]
            start, stop = int(idx[0]), int(idx[-1]) + 1
            batch = dataset.tensors[start:stop] if stop - start == len(idx) else dataset.tensors[idx]
            yield batch.to(device, non_blocking=True)
        return
    if transform is None:
        raise TypeError("images need a transform; only a PreprocessedDataset is batched without one")
    if num_workers is None:
        cpus = os.cpu_count() or 1
        # Workers pay for themselves only when there are several batches and a spare core to decode on.
        num_workers = 0 if cpus < 2 or len(positions) <= 2 * batch_size else min(4, cpus - 1)
    loader = torch.utils.data.DataLoader(
        _Images(dataset, positions, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    for batch, _ in loader:
        yield batch.to(device, non_blocking=True)


def _extract_locked(
    dataset: Dataset,
    backbone: Backbone,
    *,
    key: str,
    parts: dict[str, Any],
    store: FeatureStore,
    device: torch.device,
    batch_size: int,
    num_workers: int | None,
    progress: bool,
    amp: bool,
    shard_size: int,
    load_seconds: float,
) -> FeatureEntry:
    from tqdm.auto import tqdm

    n = len(dataset)
    shards = _shards(n, shard_size)
    done: dict[tuple[int, int], tuple[np.ndarray, np.ndarray | None]] = {}
    for start, stop in shards:
        shard = store.load_shard(key, start, stop)
        if shard is not None:
            done[(start, stop)] = shard
    todo = [s for s in shards if s not in done]
    classify = backbone.classify
    use_amp = amp and device.type == "cuda"
    channels_last = device.type == "cuda"
    module = backbone.module
    if channels_last and isinstance(module, torch.nn.Module):
        with contextlib.suppress(RuntimeError, TypeError):
            module = module.to(memory_format=torch.channels_last)
    if isinstance(module, torch.nn.Module):
        module.eval()
    forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]
    if module is backbone.module:
        forward = backbone.features_and_logits  # one forward pass for features and logits where it can
    else:

        def forward(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
            return module(batch), (classify(batch) if classify is not None else None)

    transform = None if isinstance(dataset, PreprocessedDataset) else backbone.preprocess.transform()
    resumed_rows = sum(stop - start for start, stop in done)

    bar = tqdm(
        total=n,
        initial=resumed_rows,
        desc=str(backbone.spec)[-40:],
        unit="img",
        disable=not progress,
        dynamic_ncols=True,
        file=sys.stderr,
    )
    t0 = time.perf_counter()
    processed = 0
    try:
        positions = [i for start, stop in todo for i in range(start, stop)]
        shard_iter = iter(todo)
        current = next(shard_iter, None)
        feat_parts: list[np.ndarray] = []
        prob_parts: list[np.ndarray] = []
        rows = 0
        with torch.inference_mode():
            for batch in _batches(
                dataset, positions, transform, batch_size=batch_size, num_workers=num_workers, device=device
            ):
                if channels_last and batch.ndim == 4:
                    batch = batch.contiguous(memory_format=torch.channels_last)
                with torch.autocast(device.type, dtype=torch.float16, enabled=use_amp):
                    feats, logits = forward(batch)
                feat_parts.append(feats.reshape(len(batch), -1).float().cpu().numpy())
                if logits is not None:
                    prob_parts.append(torch.softmax(logits.float(), dim=1).cpu().numpy())
                rows += len(batch)
                processed += len(batch)
                bar.update(len(batch))
                # Close every shard the rows so far complete (a batch may span a shard boundary).
                while current is not None and rows >= current[1] - current[0]:
                    size = current[1] - current[0]
                    f_all = np.concatenate(feat_parts)
                    p_all = np.concatenate(prob_parts) if prob_parts else None
                    f_shard, p_shard = f_all[:size], None if p_all is None else p_all[:size]
                    _check_finite(f_shard, backbone.spec, dataset.sample_ids[current[0] : current[1]])
                    done[current] = (f_shard, p_shard)
                    nxt = next(shard_iter, None)
                    if nxt is not None:
                        # The last shard goes straight into the entry; saving it too would be wasted I/O.
                        store.save_shard(key, current[0], current[1], f_shard, p_shard)
                    feat_parts = [f_all[size:]]
                    prob_parts = [] if p_all is None else [p_all[size:]]
                    rows -= size
                    current = nxt
    finally:
        bar.close()
    seconds = time.perf_counter() - t0

    features = np.concatenate([done[s][0] for s in shards])
    probs_list = [done[s][1] for s in shards]
    source_probs = (
        None
        if classify is None or any(p is None for p in probs_list)
        else np.concatenate([p for p in probs_list if p is not None])
    )
    meta: dict[str, Any] = {
        "backbone": backbone.describe(),
        "spec": backbone.spec,
        "weights_id": backbone.weights_id,
        "preprocess": backbone.preprocess.to_dict(),
        "feature_layer": backbone.feature_layer,
        "num_params": backbone.num_params,
        "source_accuracy": backbone.source_accuracy,
        "key_parts": parts,
        "dataset": {
            "name": dataset.name,
            "spec": str(dataset.spec),
            "fingerprint": dataset.fingerprint,
            "n_samples": n,
            "class_names": list(dataset.class_names),
            "skipped": [list(s) for s in dataset.skipped],
        },
        "versions": _versions(),
        "device": str(device) if device.type != "cuda" else f"cuda ({torch.cuda.get_device_name(device)})",
        "amp": use_amp,
        "batch_size": batch_size,
        "timings": {
            "load_seconds": round(load_seconds, 4),
            "extraction_seconds": round(seconds, 4),
            "images_extracted": processed,
            "images_resumed": resumed_rows,
            "images_per_second": round(processed / seconds, 2) if seconds > 0 and processed else None,
        },
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
    }
    entry = store.put(
        key,
        features=features,
        labels=np.asarray(dataset.labels),
        sample_ids=list(dataset.sample_ids),
        source_probs=source_probs,
        meta=meta,
    )
    store.clear_partial(key)
    return entry


def _check_finite(features: np.ndarray, spec: str, sample_ids: Sequence[str]) -> None:
    bad = ~np.isfinite(features).all(axis=1)
    if bad.any():
        first = [str(sample_ids[i]) for i in np.flatnonzero(bad)[:5]]
        raise BackboneError(
            f"model {spec} produced NaN or inf features for {int(bad.sum())} images (first: {', '.join(first)}); "
            "nothing was stored",
            "check the weights and the preprocessing (mean/std, image size); on CUDA, extract once with "
            "`python -m analyzer extract ... --no-amp` (rank and probe then reuse those features)",
        )


class ExtractionResults(NamedTuple):
    """What :func:`extract_many` gives back: ``entries`` by spec, ``failures`` (spec -> one-line message) and
    ``errors`` (spec -> the exception, for :func:`analyzer.errors.every_candidate_failed`)."""

    entries: dict[str, FeatureEntry]
    failures: dict[str, str]
    errors: dict[str, BaseException] = {}


def extract_many(
    dataset: Dataset, specs: Sequence[str | Backbone], *, store: FeatureStore, **kwargs: Any
) -> ExtractionResults:
    """Extract each candidate in turn (see :func:`extract_features` for ``kwargs``).

    A candidate that fails (a bad spec, missing weights, NaN features, a crash in its forward pass) is
    recorded in ``failures`` with its message and the others still run. Errors about the dataset itself
    (DatasetError) stop everything, since every candidate would fail the same way. Ctrl-C is not caught.
    """
    entries: dict[str, FeatureEntry] = {}
    failures: dict[str, str] = {}
    errors: dict[str, BaseException] = {}
    for spec in specs:
        name = spec if isinstance(spec, str) else str(spec.spec)
        try:
            entries[name] = extract_features(dataset, spec, store=store, **kwargs)
        except DatasetError:
            raise
        except DeviceError:
            raise  # the same for every candidate
        except Exception as exc:  # noqa: BLE001 - one bad candidate must not lose the others' work
            failures[name] = describe(exc)
            errors[name] = exc
    return ExtractionResults(entries, failures, errors)
