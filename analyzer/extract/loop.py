"""The extraction loop, run under the entry's lock: batches in order, resumable shards, the entry written once."""

from __future__ import annotations

import contextlib
import datetime as _dt
import os
import platform
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from PIL import Image

from analyzer.contracts import Backbone, Dataset
from analyzer.errors import BackboneError
from analyzer.extract.preprocessed import ImageInputs, PreprocessedDataset

if TYPE_CHECKING:  # annotations only: extract_rows runs without the store (and its faiss)
    from analyzer.store import FeatureEntry, FeatureStore


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
        ImageInputs(dataset, positions, transform),
        batch_size=batch_size,
        shuffle=False,
        num_workers=num_workers,
        pin_memory=device.type == "cuda",
    )
    for batch, _ in loader:
        yield batch.to(device, non_blocking=True)


Forward = Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor | None]]


def _forward(backbone: Backbone, channels_last: bool) -> Forward:
    """``batch -> (features, logits or None)`` in eval mode (channels-last on CUDA, where the module allows it)."""
    classify = backbone.classify
    module = backbone.module
    if channels_last and isinstance(module, torch.nn.Module):
        with contextlib.suppress(RuntimeError, TypeError):
            module = module.to(memory_format=torch.channels_last)
    if isinstance(module, torch.nn.Module):
        module.eval()
    if module is backbone.module:
        return backbone.features_and_logits  # one forward pass for features and logits where it can

    def forward(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        return module(batch), (classify(batch) if classify is not None else None)

    return forward


def _outputs(
    batches: Iterator[torch.Tensor], forward: Forward, *, device: torch.device, amp: bool, channels_last: bool
) -> Iterator[tuple[np.ndarray, np.ndarray | None]]:
    """Per input batch: features B x D float32 and softmax source probabilities B x Cs (None without a head),
    (autocast float16 when ``amp``; channels-last 4-D inputs when asked). Iterate it inside
    ``torch.inference_mode()``: the caller's ``with`` block leaves that mode even when the loop raises."""
    for batch in batches:
        if channels_last and batch.ndim == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp):
            feats, logits = forward(batch)
        probs = None if logits is None else torch.softmax(logits.float(), dim=1).cpu().numpy()
        yield feats.reshape(len(batch), -1).float().cpu().numpy(), probs


def extract_rows(
    dataset: Dataset,
    backbone: Backbone,
    start: int,
    stop: int,
    *,
    device: torch.device,
    batch_size: int,
    num_workers: int | None,
    amp: bool,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows ``[start, stop)``: features (stop - start) x D float32 and source probabilities or None, batched from
    ``start`` exactly as :func:`extract_locked` batches them when ``start`` is a multiple of ``batch_size``
    (so the rows are equal to the bit). Raises BackboneError on NaN/inf features."""
    use_amp = amp and device.type == "cuda"
    channels_last = device.type == "cuda"
    forward = _forward(backbone, channels_last)
    transform = None if isinstance(dataset, PreprocessedDataset) else backbone.preprocess.transform()
    rows = list(range(start, stop))
    batches = _batches(
        dataset, rows, transform, batch_size=batch_size, num_workers=num_workers, device=device
    )
    with torch.inference_mode():  # the whole list inside it: the mode is left even when a batch raises
        outputs = list(_outputs(batches, forward, device=device, amp=use_amp, channels_last=channels_last))
    features = np.concatenate([feats for feats, _ in outputs])
    _check_finite(features, backbone.spec, dataset.sample_ids[start:stop])
    probs = [p for _, p in outputs if p is not None]
    return features, (np.concatenate(probs) if probs else None)


Shard = tuple[int, int]
ShardRows = tuple[np.ndarray, np.ndarray | None]


def extract_locked(
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
    """Extract ``dataset`` (resuming from the shards a killed run saved) and put the entry under ``key``; the caller
    holds the entry's lock. Returns the stored entry: features N x D float32, labels, source probabilities N x Cs
    (None without a head) and the meta (backbone, key parts, dataset, versions, timings)."""
    from tqdm.auto import tqdm

    n = len(dataset)
    shards = _shards(n, shard_size)
    done: dict[Shard, ShardRows] = {}
    for start, stop in shards:
        shard = store.load_shard(key, start, stop)
        if shard is not None:
            done[(start, stop)] = shard
    todo = [s for s in shards if s not in done]
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
    try:
        for span, rows in _extract_shards(
            dataset,
            backbone,
            todo,
            device=device,
            batch_size=batch_size,
            num_workers=num_workers,
            amp=amp,
            on_rows=bar.update,
        ):
            done[span] = rows
            if span != todo[-1]:
                # The last shard goes straight into the entry; saving it too would be wasted I/O.
                store.save_shard(key, span[0], span[1], *rows)
    finally:
        bar.close()
    seconds = time.perf_counter() - t0
    processed = n - resumed_rows

    features = np.concatenate([done[s][0] for s in shards])
    probs_list = [done[s][1] for s in shards]
    source_probs = (
        None
        if backbone.classify is None or any(p is None for p in probs_list)
        else np.concatenate([p for p in probs_list if p is not None])
    )
    timings = {
        "load_seconds": round(load_seconds, 4),
        "extraction_seconds": round(seconds, 4),
        "images_extracted": processed,
        "images_resumed": resumed_rows,
        "images_per_second": round(processed / seconds, 2) if seconds > 0 and processed else None,
    }
    meta = _entry_meta(
        dataset, backbone, parts, device=device, amp=amp, batch_size=batch_size, timings=timings
    )
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


def _extract_shards(
    dataset: Dataset,
    backbone: Backbone,
    todo: list[Shard],
    *,
    device: torch.device,
    batch_size: int,
    num_workers: int | None,
    amp: bool,
    on_rows: Callable[[int], object],
) -> Iterator[tuple[Shard, ShardRows]]:
    """The shards ``todo`` (in order), each as soon as the batches so far complete it: its features and source
    probabilities (the rows of one batched pass over all of them, so a batch may span a shard boundary).
    ``on_rows(k)`` after each batch of k rows (the progress bar). Raises BackboneError on NaN/inf features, before
    the shard is handed out."""
    use_amp = amp and device.type == "cuda"
    channels_last = device.type == "cuda"
    forward = _forward(backbone, channels_last)
    transform = None if isinstance(dataset, PreprocessedDataset) else backbone.preprocess.transform()
    positions = [i for start, stop in todo for i in range(start, stop)]
    shard_iter = iter(todo)
    current = next(shard_iter, None)
    feat_parts: list[np.ndarray] = []
    prob_parts: list[np.ndarray] = []
    rows = 0
    batches = _batches(
        dataset, positions, transform, batch_size=batch_size, num_workers=num_workers, device=device
    )
    with torch.inference_mode():
        for feats, probs in _outputs(
            batches, forward, device=device, amp=use_amp, channels_last=channels_last
        ):
            feat_parts.append(feats)
            if probs is not None:
                prob_parts.append(probs)
            rows += len(feats)
            on_rows(len(feats))
            # Close every shard the rows so far complete.
            while current is not None and rows >= current[1] - current[0]:
                size = current[1] - current[0]
                f_all = np.concatenate(feat_parts)
                p_all = np.concatenate(prob_parts) if prob_parts else None
                f_shard, p_shard = f_all[:size], None if p_all is None else p_all[:size]
                _check_finite(f_shard, backbone.spec, dataset.sample_ids[current[0] : current[1]])
                yield current, (f_shard, p_shard)
                feat_parts = [f_all[size:]]
                prob_parts = [] if p_all is None else [p_all[size:]]
                rows -= size
                current = next(shard_iter, None)


def _entry_meta(
    dataset: Dataset,
    backbone: Backbone,
    parts: dict[str, Any],
    *,
    device: torch.device,
    amp: bool,
    batch_size: int,
    timings: dict[str, Any],
) -> dict[str, Any]:
    """The stored entry's meta: the backbone, the key parts, the dataset, library versions, device and timings."""
    return {
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
            "n_samples": len(dataset),
            "class_names": list(dataset.class_names),
            "skipped": [list(s) for s in dataset.skipped],
        },
        "versions": _versions(),
        "device": str(device) if device.type != "cuda" else f"cuda ({torch.cuda.get_device_name(device)})",
        "amp": amp and device.type == "cuda",
        "batch_size": batch_size,
        "timings": timings,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
    }


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
