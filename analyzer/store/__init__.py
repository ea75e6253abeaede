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

from analyzer.store.entry import FeatureEntry
from analyzer.store.files import PARTIAL_DIR, TMP_PREFIX
from analyzer.store.keys import STORE_FORMAT_VERSION, hash_sequence, key_parts, make_key
from analyzer.store.maintenance import FeatureStore
from analyzer.store.usage import StoreUsage, cache_parts_usage, human_bytes

__all__ = [
    "FeatureEntry",
    "FeatureStore",
    "StoreUsage",
    "STORE_FORMAT_VERSION",
    "PARTIAL_DIR",
    "TMP_PREFIX",
    "cache_parts_usage",
    "hash_sequence",
    "human_bytes",
    "key_parts",
    "make_key",
]
