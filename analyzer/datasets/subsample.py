"""Deterministic stratified subsampling (``--max-per-class``)."""

from __future__ import annotations

import zlib
from typing import Any

import numpy as np

from analyzer.config import check_max_per_class


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
