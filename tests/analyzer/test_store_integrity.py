"""The verified cache: checksums written with every entry and record, checked when read, damage set aside."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from analyzer.cli import main
from analyzer.errors import EXIT_OK, EXIT_PARTIAL
from analyzer.records import RecordCache
from analyzer.store import FeatureStore, integrity


def _put(store: FeatureStore, key: str, *, probs: bool = True) -> np.ndarray:
    rng = np.random.default_rng(0)
    feats = rng.standard_normal((40, 8)).astype(np.float32)
    p = rng.dirichlet(np.ones(3), size=40).astype(np.float32) if probs else None
    store.put(
        key, features=feats, labels=np.arange(40) % 4, sample_ids=[f"s{i}" for i in range(40)], source_probs=p
    )
    return feats


def _overwrite_same_size(path: Path, offset_from_end: int, data: bytes) -> None:
    raw = bytearray(path.read_bytes())
    raw[len(raw) - offset_from_end : len(raw) - offset_from_end + len(data)] = data
    path.write_bytes(bytes(raw))


@pytest.fixture(autouse=True)
def _fresh_process_memory():
    """Each test starts as a new process would: no entry verified yet."""
    integrity._verified.clear()
    yield
    integrity._verified.clear()


def test_put_records_a_checksum_of_every_file(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    _put(store, "a" * 64)
    meta = json.loads((store.root / ("a" * 64) / "meta.json").read_text())
    assert set(meta["checksums"]) == {"index.faiss", "labels.npy", "sample_ids.json", "source_probs.npy"}
    assert meta["checksums"]["index.faiss"] == integrity.file_sha256(store.root / ("a" * 64) / "index.faiss")


@pytest.mark.parametrize(
    ("name", "damage"),
    [
        ("index.faiss", lambda p: _overwrite_same_size(p, 400, np.float32([99.0, -99.0]).tobytes())),
        ("labels.npy", lambda p: _overwrite_same_size(p, 8, np.int64(1).tobytes())),
        ("source_probs.npy", lambda p: _overwrite_same_size(p, 12, np.float32([1.0, 0.0, 0.0]).tobytes())),
        ("sample_ids.json", lambda p: p.write_text(p.read_text().replace('"s1"', '"s9"'))),
    ],
)
def test_a_file_changed_in_place_is_never_used_but_set_aside_and_said(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], name: str, damage
) -> None:
    store = FeatureStore(tmp_path)
    key = "b" * 64
    _put(store, key)
    size = (store.root / key / name).stat().st_size
    damage(store.root / key / name)
    assert (store.root / key / name).stat().st_size == size or name == "sample_ids.json"
    assert store.get(key) is None  # a miss: the caller extracts it again
    (moved,) = (store.root / "quarantine").iterdir()
    assert (moved / name).is_file() and f"{name} differs from the checksum" in (
        moved / "REASON.txt"
    ).read_text()
    assert f"{name} differs from the checksum" in capfd.readouterr().err
    _put(store, key)  # the recomputed entry is used
    assert store.get(key) is not None and len(list((store.root / "quarantine").iterdir())) == 1


def test_a_change_after_this_process_verified_the_entry_is_still_caught(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    key = "c" * 64
    _put(store, key)
    assert store.get(key) is not None  # verified once
    _overwrite_same_size(store.root / key / "index.faiss", 400, np.float32([7.0]).tobytes())
    assert store.get(key) is None


def test_a_broken_meta_json_is_set_aside_not_an_error(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    key = "d" * 64
    _put(store, key)
    (store.root / key / "meta.json").write_text("{not json")
    assert store.get(key) is None and (store.root / "quarantine").is_dir()


def test_an_entry_of_the_old_format_without_checksums_is_a_miss_and_listed_stale(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    key = "e" * 64
    _put(store, key)
    meta_path = store.root / key / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["checksums"]
    meta["format_version"] = 1
    meta_path.write_text(json.dumps(meta))
    assert store.get(key) is None and key in store.keys()  # never read, left for `cache rm --stale`
    assert [r["status"] for r in store.verify()] == ["stale"]


def test_a_current_entry_whose_checksums_were_removed_is_unverifiable_and_set_aside(tmp_path: Path) -> None:
    store = FeatureStore(tmp_path)
    key = "f" * 64
    _put(store, key)
    meta_path = store.root / key / "meta.json"
    meta = json.loads(meta_path.read_text())
    del meta["checksums"]
    meta_path.write_text(json.dumps(meta))
    assert store.get(key) is None and key not in store.keys()


def test_a_read_only_cache_cannot_set_aside_and_says_how_to_fix(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analyzer.errors import CacheError

    store = FeatureStore(tmp_path)
    key = "g" * 64
    _put(store, key)
    _overwrite_same_size(store.root / key / "labels.npy", 8, np.int64(2).tobytes())

    def read_only(*args: object) -> None:  # root ignores chmod; a read-only mount answers EROFS
        raise OSError(30, "Read-only file system")

    monkeypatch.setattr(integrity.os, "rename", read_only)
    with pytest.raises(CacheError, match="cannot be moved aside") as info:
        store.get(key)
    assert "writable" in str(info.value.fix)


def test_an_edited_record_is_set_aside_and_read_as_absent(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    records = RecordCache(tmp_path / "scores" / ("k" * 64))
    records.put("logme", {"value": 0.034})
    assert records.get("logme") == {"value": 0.034}
    path = records.path("logme")
    path.write_text(path.read_text().replace("0.034", "99.0"))
    assert records.get("logme") is None and not path.exists()
    assert list((records.folder / "quarantine").iterdir())
    assert "differs from the checksum" in capfd.readouterr().err


def test_a_record_without_a_checksum_is_recomputed(tmp_path: Path) -> None:
    records = RecordCache(tmp_path)
    records.path("old").write_text(json.dumps({"value": 1.0}))
    assert records.get("old") is None


def test_cache_verify_lists_each_damaged_entry_and_record_and_exits_3(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    store = FeatureStore(tmp_path)
    for key in ("1" * 64, "2" * 64, "3" * 64):
        _put(store, key)
    RecordCache(tmp_path / "scores" / ("1" * 64)).put("knn", 0.5)
    argv = ["cache", "--cache-dir", str(tmp_path), "verify"]
    assert main(argv) == EXIT_OK
    assert "checked 3 entries and 1 records" in capfd.readouterr().out
    _overwrite_same_size(store.root / ("2" * 64) / "index.faiss", 400, np.float32([1.5]).tobytes())
    (store.root / ("3" * 64) / "source_probs.npy").write_bytes(b"replaced")
    record = tmp_path / "scores" / ("1" * 64) / "knn.json"
    record.write_text(record.read_text().replace("0.5", "99.0"))
    assert main(argv) == EXIT_PARTIAL
    out = capfd.readouterr().out
    assert f"damaged  entry {'2' * 12}" in out and "index.faiss differs" in out
    assert f"damaged  entry {'3' * 12}" in out and "source_probs.npy differs" in out
    assert f"damaged  record {record}" in out and "3 damaged" in out
    assert store.keys() == ["1" * 64, "2" * 64, "3" * 64]  # verify moves nothing
