"""Entry keys: a sha256 over a canonical JSON of everything that determines an entry's content."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

#: Bumped whenever the entry layout or the meaning of a key part changes; old entries then become misses
#: (and ``rm(stale=True)`` removes them). 2: meta.json records every file's sha256 (entries of version 1 have none,
#: so they cannot be verified: they are misses and are extracted again).
STORE_FORMAT_VERSION = 2


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
