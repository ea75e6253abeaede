"""Batched, resumable, cached extraction of frozen features: dataset x backbone -> :class:`FeatureEntry`.

The cache key is computed before any forward pass (from the backbone's spec, weights id and preprocessing, the
feature layer and the dataset fingerprint), so a store hit runs the model zero times. A miss extracts under the
key's file lock (a concurrent process extracting the same entry waits, then reuses the result), in shards saved
atomically under ``partial/<key>/`` so a killed run resumes where it stopped, and writes the entry atomically.

The torch-side names (``PreprocessedDataset``, ``predecode``, ``resolve_device``) are imported on first use, so
importing the package, and a store hit, does not import torch; the store's (faiss) are imported on first use too.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from analyzer.device import resolve_device
    from analyzer.extract.api import DEFAULT_SHARD_SIZE, ExtractionResults, extract_features, extract_many
    from analyzer.extract.keys import entry_key_parts
    from analyzer.extract.preprocessed import PreprocessedDataset, predecode

#: Name -> the module that defines it, imported when the name is first asked for (PEP 562). The store's names
#: (faiss) too: the extraction loop itself (``analyzer.extract.loop.extract_rows``) needs neither, so the GPU
#: check (benchmarks/gpu_check.py) runs it where only torch is installed.
_LAZY = {
    "DEFAULT_SHARD_SIZE": "analyzer.extract.api",
    "ExtractionResults": "analyzer.extract.api",
    "extract_features": "analyzer.extract.api",
    "extract_many": "analyzer.extract.api",
    "entry_key_parts": "analyzer.extract.keys",
    "PreprocessedDataset": "analyzer.extract.preprocessed",
    "predecode": "analyzer.extract.preprocessed",
    "resolve_device": "analyzer.device",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "DEFAULT_SHARD_SIZE",
    "ExtractionResults",
    "PreprocessedDataset",
    "entry_key_parts",
    "extract_features",
    "extract_many",
    "predecode",
    "resolve_device",
]
