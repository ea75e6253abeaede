"""extract_features (one candidate, a store hit when nothing changed) and extract_many (each in turn).

torch is imported only past the store lookup: a hit through the spec memo (the cached run's path) reads the
entry without importing torch at all, which is most of a cached run's start-up.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
from filelock import Timeout

from analyzer.contracts import Backbone, Dataset
from analyzer.errors import AnalyzerError, DatasetError, DeviceError, describe
from analyzer.extract.keys import entry_key_parts, key_parts_from, recall_resolution, remember_resolution
from analyzer.store import FeatureEntry, FeatureStore, make_key

if TYPE_CHECKING:
    import torch

#: Rows per resumable shard. Small enough that a killed run loses little, large enough that shard I/O is noise.
DEFAULT_SHARD_SIZE = 2048


def _load_backbone(spec: str, device: torch.device, **overrides: Any) -> Backbone:
    from analyzer.sources import load_backbone

    return load_backbone(spec, device=str(device), **overrides)


def _resolve_device(device: str | torch.device | None) -> torch.device:
    from analyzer.device import resolve_device

    return resolve_device(device)


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
    from analyzer.limits import MAX_SHARD_SIZE, check_range

    check_range(shard_size, flag="shard_size", low=1, high=MAX_SHARD_SIZE, what="rows per resumable shard")
    dataset = _validate_dataset(dataset, skip_bad)
    # A bad --device fails even on a store hit; None/auto/cpu cannot fail, so they wait until torch is needed.
    dev = None if device is None or str(device) in ("auto", "cpu") else _resolve_device(device)
    overrides = {"feature_layer": feature_layer, "image_size": image_size, "mean": mean, "std": std}
    if isinstance(spec_or_backbone, str):
        hit = _remembered_hit(store, dataset, spec_or_backbone, overrides)
        if hit is not None:
            return hit
    from analyzer.extract.loop import extract_locked

    dev = dev if dev is not None else _resolve_device(device)
    t0 = time.perf_counter()
    backbone, loaded_on = _first_load(store, spec_or_backbone, overrides)
    load_seconds = time.perf_counter() - t0

    parts = entry_key_parts(dataset, backbone)
    key = make_key(parts)
    hit = _matching(store, store.get(key), dataset)
    if hit is not None:
        return hit

    _check_memory(dataset, backbone, batch_size, num_workers)
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
        hit = _matching(store, store.get(key), dataset)  # the process we waited for may have finished it
        if hit is not None:
            return hit
        if isinstance(spec_or_backbone, str) and loaded_on != dev:
            t1 = time.perf_counter()
            backbone = _load_backbone(spec_or_backbone, dev, **overrides)
            load_seconds += time.perf_counter() - t1
        return extract_locked(
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


def _remembered_hit(
    store: FeatureStore, dataset: Dataset, spec: str, overrides: dict[str, Any]
) -> FeatureEntry | None:
    """The stored entry of a spec seen before whose local files are unchanged: its key without loading the model
    (nor importing torch) at all; None when the spec is not remembered or its entry is gone."""
    memo = recall_resolution(store, spec, overrides)
    if memo is None:
        return None
    fields = ("spec", "weights_id", "preprocess", "feature_layer")
    return _matching(
        store, store.get(make_key(key_parts_from(dataset, **{f: memo[f] for f in fields}))), dataset
    )


def _first_load(
    store: FeatureStore, spec_or_backbone: str | Backbone, overrides: dict[str, Any]
) -> tuple[Backbone, torch.device | None]:
    """``(backbone, where this call loaded it)``: a spec is loaded on the CPU (enough to compute the key; a store
    hit never moves anything to the GPU) and remembered; a caller's backbone comes back as is, with None."""
    import torch

    if isinstance(spec_or_backbone, str):
        backbone = _load_backbone(spec_or_backbone, torch.device("cpu"), **overrides)
        remember_resolution(store, spec_or_backbone, overrides, backbone)
        return backbone, torch.device("cpu")
    if any(v is not None for v in overrides.values()):
        raise AnalyzerError(
            "feature_layer/image_size/mean/std apply when loading a model spec, not to a loaded backbone",
            "pass the spec string instead, or load the backbone with those options",
        )
    return spec_or_backbone, None


def _check_memory(dataset: Dataset, backbone: Backbone, batch_size: int, num_workers: int | None) -> None:
    """Refuse (exit 2, with the estimate) an extraction whose arrays and batches exceed the machine's memory, before
    the first batch is allocated (a 100 000-pixel --image-size asked for 240 GB and died inside torch)."""
    from analyzer.limits import MAX_BATCH_SIZE, check_memory, check_range, extraction_bytes

    check_range(batch_size, flag="--batch-size", low=1, high=MAX_BATCH_SIZE)
    _, height, width = backbone.preprocess.input_size
    workers = (
        min(4, os.cpu_count() or 1) if num_workers is None else num_workers
    )  # loop.py's automatic choice
    dim = backbone.feature_dim or 0
    needed = extraction_bytes(
        len(dataset), dim, batch_size, max(height, width), workers, backbone.num_source_classes or 0
    )
    check_memory(
        needed,
        what=f"extracting {backbone.spec} on {len(dataset)} images ({height}x{width} pixels, batches of {batch_size})",
        fix="pass a smaller --batch-size, --image-size or --num-workers, or subsample with --max-per-class",
    )


def _matching(store: FeatureStore, hit: FeatureEntry | None, dataset: Dataset) -> FeatureEntry | None:
    """``hit`` when its labels and sample ids are the dataset's just loaded, else None after setting it aside.

    The key already hashes both, so a difference means the entry's files were changed behind the store's back
    in a way its checksums did not catch (meta.json edited with them): never used.
    """
    if hit is None:
        return None
    want = np.asarray(dataset.labels)
    if want.dtype == object:
        want = want.astype(str)  # as the store saves them
    if (
        len(hit.labels) == len(want)
        and np.array_equal(hit.labels, want)
        and hit.sample_ids == list(dataset.sample_ids)
    ):
        return hit
    hit.release()
    store.set_aside(hit.key, "its labels or sample ids differ from the dataset's just loaded")
    return None


def _module_device(backbone: Backbone, default: torch.device) -> torch.device:
    """Where a caller-loaded backbone's parameters live (its inputs must go there too)."""
    import torch

    module = backbone.module
    if isinstance(module, torch.nn.Module):
        for parameter in module.parameters():
            return parameter.device
        for buffer in module.buffers():
            return buffer.device
    return default


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
