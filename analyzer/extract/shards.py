"""One shard of a large target's extraction as its own unit of work, so one big backbone spreads over workers.

A shard task writes rows ``[start, stop)`` into the entry's partial shard file (``partial/<key>/``, atomically,
the same file the in-process loop writes and resumes from); it never writes the entry. The entry is then put
once, by :func:`analyzer.extract.extract_features` under the entry's lock, which finds every shard done and only
assembles them. Two writers of one shard (two drivers) write the same rows; the rename makes the last one win.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass

from analyzer.contracts import Dataset
from analyzer.store import FeatureStore, make_key


@dataclass(frozen=True)
class ShardDone:
    """A shard task's result: the entry ``key`` it belongs to and the ``seconds`` its forward passes took
    (0.0 when the shard or the whole entry was already stored)."""

    key: str
    seconds: float


def shard_ranges(n: int, shard_size: int) -> list[tuple[int, int]]:
    """The ``[start, stop)`` rows of each shard of an ``n``-sample dataset: the extraction loop's own split."""
    from analyzer.extract.loop import _shards

    return _shards(n, shard_size)


def extract_shard(
    dataset: Dataset,
    spec: str,
    cache_dir: str | os.PathLike[str],
    start: int,
    stop: int,
    *,
    device: str | None = None,
    batch_size: int = 64,
    num_workers: int | None = None,
    amp: bool = True,
    feature_layer: str | int | None = None,
    image_size: int | Sequence[int] | None = None,
    mean: float | Sequence[float] | None = None,
    std: float | Sequence[float] | None = None,
) -> ShardDone:
    """Extract rows ``[start, stop)`` of ``dataset`` (already checked) under ``spec`` into the store's partial
    shard file for the entry, unless that shard or the entry is already stored. Raises the load or extraction
    error (the features stage reports it as the candidate's failure).

    ``feature_layer``, ``image_size``, ``mean``, ``std``: the model's overrides, as for
    :func:`analyzer.extract.extract_features` (they are part of the entry's key: the entry task must get the same).
    """
    import torch

    from analyzer.extract.api import _load_backbone, _resolve_device
    from analyzer.extract.keys import entry_key_parts
    from analyzer.extract.loop import extract_rows

    store = FeatureStore(cache_dir)
    cpu = torch.device("cpu")
    overrides = {"feature_layer": feature_layer, "image_size": image_size, "mean": mean, "std": std}
    backbone = _load_backbone(spec, cpu, **overrides)  # on the CPU first: enough for the key
    key = make_key(entry_key_parts(dataset, backbone))
    if store.get(key) is not None or store.load_shard(key, start, stop) is not None:
        return ShardDone(key, 0.0)
    dev = _resolve_device(device)
    if dev != cpu:
        backbone = _load_backbone(spec, dev, **overrides)
    t0 = time.perf_counter()
    features, probs = extract_rows(
        dataset, backbone, start, stop, device=dev, batch_size=batch_size, num_workers=num_workers, amp=amp
    )
    store.save_shard(key, start, stop, features, probs)
    return ShardDone(key, time.perf_counter() - t0)
