"""The feature store: keys, atomic entries, shards, locks, ls/du/rm."""

from __future__ import annotations

import json
import multiprocessing as mp
import os

import faiss
import numpy as np
import pytest

from analyzer.errors import CacheError, UsageError
from analyzer.store import (
    PARTIAL_DIR,
    STORE_FORMAT_VERSION,
    TMP_PREFIX,
    FeatureStore,
    key_parts,
    make_key,
)


def _parts(**changes):
    base = {
        "spec": "timm:resnet18@/w.safetensors",
        "weights_id": "sha256:aaa",
        "preprocess": {"input_size": [3, 32, 32], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
        "feature_layer": None,
        "dataset_fingerprint": "fp1",
        "sample_ids": ["a.png", "b.png", "c.png"],
        "labels": [0, 1, 1],
    }
    base.update(changes)
    return key_parts(**base)


def _arrays(n=12, d=5, cs=3, seed=0):
    rng = np.random.default_rng(seed)
    feats = rng.standard_normal((n, d)).astype(np.float32)
    logits = rng.standard_normal((n, cs))
    probs = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return feats, np.arange(n) % 3, [f"img{i}.png" for i in range(n)], probs


def test_key_is_stable_and_changes_with_every_part():
    key = make_key(_parts())
    assert key == make_key(_parts()) and len(key) == 64
    changed = [
        _parts(spec="timm:resnet34@/w.safetensors"),
        _parts(weights_id="sha256:bbb"),
        _parts(preprocess={"input_size": [3, 64, 64], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}),
        _parts(feature_layer="layer3"),
        _parts(dataset_fingerprint="fp2"),
        _parts(sample_ids=["a.png", "b.png"], labels=[0, 1]),
        _parts(labels=[0, 1, 0]),
    ]
    keys = {make_key(p) for p in changed}
    assert key not in keys and len(keys) == len(changed)
    # dict order of the preprocessing config does not matter
    reordered = _parts(
        preprocess={"std": [0.5, 0.5, 0.5], "mean": [0.5, 0.5, 0.5], "input_size": [3, 32, 32]}
    )
    assert make_key(reordered) == key
    assert _parts()["format_version"] == STORE_FORMAT_VERSION


def test_put_then_get_round_trips_every_array(tmp_path):
    store = FeatureStore(tmp_path)
    feats, labels, ids, probs = _arrays()
    key = make_key(_parts())
    assert store.get(key) is None
    entry = store.put(
        key, features=feats, labels=labels, sample_ids=ids, source_probs=probs, meta={"spec": "s"}
    )
    again = FeatureStore(tmp_path).get(key)
    for e in (entry, again):
        np.testing.assert_array_equal(e.features, feats)
        assert e.features.dtype == np.float32
        np.testing.assert_array_equal(e.labels, labels)
        assert e.sample_ids == ids
        np.testing.assert_allclose(e.source_probs, probs, rtol=1e-6)
        assert e.meta["n_samples"] == 12 and e.meta["feature_dim"] == 5 and e.meta["spec"] == "s"
    assert (tmp_path / "features" / key / "index.faiss").is_file()


def test_index_is_a_flat_l2_index_usable_for_knn(tmp_path):
    store = FeatureStore(tmp_path)
    feats, labels, ids, _ = _arrays(n=20, d=4)
    entry = store.put("k" * 64, features=feats, labels=labels, sample_ids=ids)
    index = entry.index()
    assert isinstance(index, faiss.IndexFlatL2) and index.ntotal == 20
    dist, nn = index.search(feats[:3], 1)
    np.testing.assert_array_equal(nn[:, 0], [0, 1, 2])
    np.testing.assert_allclose(dist[:, 0], 0, atol=1e-5)
    assert entry.source_probs is None


def test_string_labels_survive_without_pickle(tmp_path):
    store = FeatureStore(tmp_path)
    feats, _, ids, _ = _arrays(n=3)
    entry = store.put(
        "s" * 64, features=feats, labels=np.array(["A", "B", "A"], dtype=object), sample_ids=ids
    )
    assert list(FeatureStore(tmp_path).get(entry.key).labels) == ["A", "B", "A"]


def test_put_refuses_nan_features_and_mismatched_lengths(tmp_path):
    store = FeatureStore(tmp_path)
    feats, labels, ids, _ = _arrays()
    bad = feats.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        store.put("n" * 64, features=bad, labels=labels, sample_ids=ids)
    with pytest.raises(ValueError, match="one label and one id"):
        store.put("n" * 64, features=feats, labels=labels[:-1], sample_ids=ids)
    assert store.keys() == [] and list(store._temp_dirs()) == []


def test_failed_write_leaves_no_entry_and_no_temp_dir(tmp_path, monkeypatch):
    store = FeatureStore(tmp_path)
    feats, labels, ids, _ = _arrays()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("analyzer.store.core.faiss.write_index", boom)
    with pytest.raises(OSError, match="disk full"):
        store.put("f" * 64, features=feats, labels=labels, sample_ids=ids)
    assert store.get("f" * 64) is None
    assert sorted(os.listdir(store.root)) == ["locks", "partial"]  # no entry, no temp dir


def test_leftover_temp_dir_is_ignored_and_cleaned_on_next_put(tmp_path):
    store = FeatureStore(tmp_path)
    key = "a" * 64
    leftover = store.root / f"{TMP_PREFIX}{key}-99999-deadbeef"
    leftover.mkdir()
    (leftover / "index.faiss").write_bytes(b"half written")
    assert store.get(key) is None and key not in store.keys()
    feats, labels, ids, _ = _arrays()
    store.put(key, features=feats, labels=labels, sample_ids=ids)
    assert not leftover.exists() and store.get(key) is not None


def test_entry_missing_a_file_is_set_aside_and_read_as_a_miss(tmp_path, capfd):
    store = FeatureStore(tmp_path)
    feats, labels, ids, _ = _arrays()
    key = "m" * 64
    store.put(key, features=feats, labels=labels, sample_ids=ids)
    (store.root / key / "labels.npy").unlink()
    assert store.get(key) is None and key not in store.keys()
    (moved,) = (store.root / "quarantine").iterdir()
    assert moved.name.startswith(key) and "labels.npy is missing" in (moved / "REASON.txt").read_text()
    assert "labels.npy is missing" in capfd.readouterr().err


def test_entry_of_another_format_version_is_a_miss(tmp_path):
    store = FeatureStore(tmp_path)
    feats, labels, ids, _ = _arrays()
    key = "v" * 64
    store.put(key, features=feats, labels=labels, sample_ids=ids)
    meta_path = store.root / key / "meta.json"
    meta = json.loads(meta_path.read_text())
    meta["format_version"] = STORE_FORMAT_VERSION + 1
    meta_path.write_text(json.dumps(meta))
    assert store.get(key) is None
    assert store.rm(stale=True) == [key]


def test_shards_round_trip_and_damaged_shards_are_not_trusted(tmp_path):
    store = FeatureStore(tmp_path)
    feats, _, _, probs = _arrays(n=10)
    store.save_shard("x" * 64, 0, 10, feats, probs)
    got = store.load_shard("x" * 64, 0, 10)
    np.testing.assert_array_equal(got[0], feats)
    np.testing.assert_allclose(got[1], probs, rtol=1e-6)
    assert store.load_shard("x" * 64, 10, 20) is None
    (store.partial_dir("x" * 64) / store.shard_name(10, 20)).write_bytes(b"truncated")
    assert store.load_shard("x" * 64, 10, 20) is None
    store.clear_partial("x" * 64)
    assert not store.partial_dir("x" * 64).exists()


def test_ls_du_and_rm_by_prefix_spec_glob_all_and_stale(tmp_path):
    store = FeatureStore(tmp_path)
    feats, labels, ids, _ = _arrays()
    k1 = make_key(_parts(spec="timm:a"))
    k2 = make_key(_parts(spec="torchscript:/m/b.pt"))
    store.put(k1, features=feats, labels=labels, sample_ids=ids, meta={"spec": "timm:a"})
    store.put(k2, features=feats, labels=labels, sample_ids=ids, meta={"spec": "torchscript:/m/b.pt"})
    rows = {r["key"]: r for r in store.ls()}
    assert set(rows) == {k1, k2} and rows[k1]["spec"] == "timm:a" and rows[k1]["n_samples"] == 12
    usage = store.du()
    assert usage.entries[k1] > feats.nbytes and usage.total == sum(usage.entries.values())

    with pytest.raises(CacheError, match="cache ls"):
        store.rm(["nomatch"])
    with pytest.raises(UsageError, match="--all"):
        store.rm()
    assert store.rm(["torchscript:*"]) == [k2]
    assert store.keys() == [k1]

    store.save_shard("p" * 64, 0, 4, feats[:4], None)
    (store.root / f"{TMP_PREFIX}{'t' * 64}-1-abc").mkdir()
    removed = store.rm(stale=True)
    assert len(removed) == 2 and store.keys() == [k1]
    assert not any((store.root / PARTIAL_DIR).iterdir())
    assert store.rm([k1[:8]]) == [k1] and store.keys() == []

    store.put(k1, features=feats, labels=labels, sample_ids=ids)
    assert store.rm(all=True) == [k1] and store.du().total == 0


def _hold_lock(root, key, ready, release):
    store = FeatureStore(root)
    with store.lock(key):
        ready.set()
        release.wait(30)


def test_rm_stale_leaves_partial_shards_of_a_running_extraction(tmp_path):
    store = FeatureStore(tmp_path)
    feats, _, _, _ = _arrays()
    key = "b" * 64
    store.save_shard(key, 0, 4, feats[:4], None)
    ctx = mp.get_context("fork")
    ready, release = ctx.Event(), ctx.Event()
    holder = ctx.Process(target=_hold_lock, args=(tmp_path, key, ready, release))
    holder.start()
    try:
        assert ready.wait(30)
        assert store.rm(stale=True) == []
        assert store.load_shard(key, 0, 4) is not None
    finally:
        release.set()
        holder.join(30)
    assert store.rm(stale=True) == [str(store.partial_dir(key))]


def test_store_honours_the_cache_dir_environment_variable(cache_dir):
    store = FeatureStore()
    assert store.root == cache_dir.resolve() / "features"
