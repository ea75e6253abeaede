"""One finished store entry, its arrays loaded lazily (the FeatureEntry contract of analyzer.contracts)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import faiss
import numpy as np

from analyzer.errors import CacheError
from analyzer.store.files import IDS_FILE, INDEX_FILE, LABELS_FILE, PROBS_FILE


@dataclass
class FeatureEntry:
    """One finished store entry. Arrays load lazily from ``path`` and are cached on the object.

    ``features``: N x D float32 (recovered from the flat index); ``labels``: N original label values;
    ``sample_ids``: N strings; ``source_probs``: N x Cs float32 rows summing to 1, or None; ``meta``: meta.json.
    """

    key: str
    path: Path
    meta: dict[str, Any]
    _cache: dict[str, Any] = field(default_factory=dict, repr=False)
    #: The open lease file holding a shared lock while this object lives (see :meth:`FeatureStore.in_use`).
    lease: Any = field(default=None, repr=False, compare=False)

    def release(self) -> None:
        """Give up the reader lease now (``cache rm`` and the quarantine may then move the entry)."""
        if self.lease is not None:
            self.lease.close()
            self.lease = None

    def index(self) -> faiss.IndexFlatL2:
        """The faiss flat L2 index over the raw features (exact kNN: ``index.search(queries, k)``)."""
        if "index" not in self._cache:
            try:
                self._cache["index"] = faiss.read_index(str(self.path / INDEX_FILE))
            except RuntimeError as exc:
                raise CacheError(
                    f"feature store entry {self.key} has an unreadable index ({exc})",
                    f"remove it with `python -m analyzer cache rm {self.key[:12]}` and extract again",
                ) from exc
        return self._cache["index"]

    @property
    def features(self) -> np.ndarray:
        """N x D float32 feature matrix."""
        if "features" not in self._cache:
            index = self.index()
            feats = (
                index.reconstruct_n(0, index.ntotal) if index.ntotal else np.zeros((0, index.d), np.float32)
            )
            self._cache["features"] = np.ascontiguousarray(feats, dtype=np.float32)
        return self._cache["features"]

    @property
    def labels(self) -> np.ndarray:
        """N labels (the dataset's original values)."""
        if "labels" not in self._cache:
            self._cache["labels"] = np.load(self.path / LABELS_FILE, allow_pickle=False)
        return self._cache["labels"]

    @property
    def sample_ids(self) -> list[str]:
        """N sample ids, aligned with the rows of ``features``."""
        if "sample_ids" not in self._cache:
            self._cache["sample_ids"] = json.loads((self.path / IDS_FILE).read_text("utf-8"))
        return self._cache["sample_ids"]

    @property
    def source_probs(self) -> np.ndarray | None:
        """N x Cs source-class probabilities (softmax of the backbone's head), or None without a head."""
        if "source_probs" not in self._cache:
            p = self.path / PROBS_FILE
            self._cache["source_probs"] = np.load(p, allow_pickle=False) if p.exists() else None
        return self._cache["source_probs"]

    @property
    def spec(self) -> str:
        return str(self.meta.get("spec", ""))

    @property
    def num_samples(self) -> int:
        return int(self.meta.get("n_samples", 0))

    @property
    def feature_dim(self) -> int:
        return int(self.meta.get("feature_dim", 0))
