"""Batched, resumable, cached extraction of frozen features: dataset x backbone -> :class:`FeatureEntry`.

The cache key is computed before any forward pass (from the backbone's spec, weights id and preprocessing, the
feature layer and the dataset fingerprint), so a store hit runs the model zero times. A miss extracts under the
key's file lock (a concurrent process extracting the same entry waits, then reuses the result), in shards saved
atomically under ``partial/<key>/`` so a killed run resumes where it stopped, and writes the entry atomically.
"""

from analyzer.device import resolve_device
from analyzer.extract.api import ExtractionResults, extract_features, extract_many
from analyzer.extract.keys import entry_key_parts
from analyzer.extract.loop import DEFAULT_SHARD_SIZE
from analyzer.extract.preprocessed import PreprocessedDataset, predecode

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
