"""RecordCache: small JSON records written atomically; absent or damaged records read as absent."""

from __future__ import annotations

import json

import numpy as np

from analyzer.records import RecordCache


def test_a_record_round_trips_with_numpy_values_made_plain(tmp_path):
    cache = RecordCache(tmp_path / "scores" / "key")
    cache.put("knn-abc", {"terms": np.array([1.5, np.nan]), "n": np.int64(3)})
    assert cache.get("knn-abc") == {"terms": [1.5, None], "n": 3}
    assert "knn-abc" in cache and cache.path("knn-abc") == tmp_path / "scores" / "key" / "knn-abc.json"


def test_missing_damaged_and_foreign_records_read_as_absent(tmp_path):
    cache = RecordCache(tmp_path)
    assert cache.get("nothing") is None
    cache.path("broken").write_text('{"value": 1', encoding="utf-8")  # a write cut short by a crash
    assert cache.get("broken") is None
    cache.path("old").write_text(
        json.dumps({"spectrum": {"alpha": 3.0}}), encoding="utf-8"
    )  # an older layout
    assert cache.get("old") is None


def test_a_rewrite_replaces_the_record_and_leaves_no_temporary_file(tmp_path):
    cache = RecordCache(tmp_path)
    cache.put("r", 1.0)
    cache.put("r", 2.0)
    assert cache.get("r") == 2.0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]
    cache.remove("r")
    assert cache.get("r") is None and "r" not in cache
