"""Bad dataset inputs: corrupt and truncated images, lazy validation, single-sample classes, long error lists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analyzer.datasets import check_images, open_dataset, validate_dataset
from analyzer.datasets.dataset import MAX_LISTED
from analyzer.errors import AnalyzerError, DatasetError


def save_png(path: Path, value: int, size: int = 16) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    # Noise, not a flat colour, so the PNG's compressed data is long enough to cut in half.
    pixels = np.random.default_rng(value).integers(0, 256, size=(size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)


def make_folder(root: Path, counts: dict[str, int]) -> Path:
    for k, (name, count) in enumerate(counts.items()):
        for i in range(count):
            save_png(root / name / f"{i:03d}.png", 100 * k + i)
    return root


def corrupt(path: Path) -> None:
    path.write_bytes(b"this is not an image at all")


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


@pytest.mark.parametrize("damage", [corrupt, truncate], ids=["corrupt", "truncated"])
def test_a_damaged_image_stops_the_open_with_its_path_and_the_skip_flag(tmp_path, damage):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 3})
    damage(root / "b" / "001.png")
    with pytest.raises(DatasetError) as info:
        open_dataset(root)
    assert isinstance(info.value, AnalyzerError)
    message = str(info.value)
    assert "b/001.png" in message and "cannot decode" in message
    assert "1 unreadable image" in message
    assert info.value.fix is not None and "--skip-bad" in info.value.fix


@pytest.mark.parametrize("damage", [corrupt, truncate], ids=["corrupt", "truncated"])
def test_skip_bad_drops_a_damaged_image_and_records_it(tmp_path, damage):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 3})
    damage(root / "a" / "002.png")
    ds = open_dataset(root, skip_bad=True)
    assert len(ds) == 5
    assert "a/002.png" not in ds.sample_ids
    assert [sample_id for sample_id, _ in ds.skipped] == ["a/002.png"]
    assert ds.to_dict()["skipped"][0][0] == "a/002.png"
    clean = open_dataset(make_folder(tmp_path / "clean", {"a": 3, "b": 3}))
    assert ds.fingerprint != clean.fingerprint


def test_truncated_image_in_a_label_file_dataset_is_caught_too(tmp_path):
    save_png(tmp_path / "x.png", 1)
    save_png(tmp_path / "y.png", 2)
    truncate(tmp_path / "y.png")
    (tmp_path / "l.jsonl").write_text('{"path": "x.png", "label": 0}\n{"path": "y.png", "label": 1}\n')
    with pytest.raises(DatasetError, match="y.png: cannot decode"):
        open_dataset(tmp_path / "l.jsonl")


def test_lazy_validation_leaves_decoding_to_check_images_and_validate_dataset(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 3})
    truncate(root / "a" / "000.png")
    lazy = open_dataset(root, validate=False)
    assert len(lazy) == 6 and not lazy.checked
    bad = check_images(lazy)
    assert [sample_id for sample_id, _ in bad] == ["a/000.png"]
    with pytest.raises(DatasetError, match="a/000.png"):
        validate_dataset(lazy)
    checked = validate_dataset(lazy, skip_bad=True)
    assert checked.checked and len(checked) == 5
    assert checked.skipped == bad
    # The same result as skipping at open time, fingerprint included: extraction may use either path.
    eager = open_dataset(root, skip_bad=True)
    assert checked.fingerprint == eager.fingerprint
    assert checked.sample_ids == eager.sample_ids
    assert check_images(checked) == []


def test_only_the_subsample_is_decoded_so_an_unselected_bad_file_does_not_stop_the_run(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 6})
    ids = open_dataset(root, max_per_class=2, seed=0).sample_ids
    unselected = next(f"a/{i:03d}.png" for i in range(6) if f"a/{i:03d}.png" not in ids)
    corrupt(root / unselected)
    assert open_dataset(root, max_per_class=2, seed=0).sample_ids == ids


def test_many_bad_files_are_listed_up_to_a_limit_then_counted(tmp_path):
    root = make_folder(tmp_path / "d", {"a": MAX_LISTED + 5, "b": 1})
    for i in range(MAX_LISTED + 5):
        corrupt(root / "a" / f"{i:03d}.png")
    with pytest.raises(DatasetError, match=r"and 5 more"):
        open_dataset(root)
    ds = open_dataset(root, skip_bad=True)
    assert len(ds.skipped) == MAX_LISTED + 5 and len(ds) == 1


def test_a_dataset_with_nothing_readable_is_an_error_even_with_skip_bad(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2})
    for path in (root / "a").iterdir():
        corrupt(path)
    with pytest.raises(DatasetError, match="no usable sample left"):
        open_dataset(root, skip_bad=True)


def test_a_single_sample_class_is_a_problem_not_a_crash(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 3, "lonely": 1})
    ds = open_dataset(root)
    assert len(ds) == 4 and ds.class_names == ["a", "lonely"]
    assert len(ds.problems) == 1
    assert "single sample" in ds.problems[0] and "'lonely'" in ds.problems[0]


def test_a_single_class_dataset_is_reported(tmp_path):
    ds = open_dataset(make_folder(tmp_path / "d", {"only": 3}))
    assert any("only 1 class" in p for p in ds.problems)


def test_load_image_out_of_range_raises_index_error(tmp_path):
    ds = open_dataset(make_folder(tmp_path / "d", {"a": 2}))
    with pytest.raises(IndexError):
        ds.load_image(2)


def test_a_broken_npz_archive_is_an_error_saying_how_to_recreate_it(tmp_path):
    (tmp_path / "x.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(DatasetError, match="not a readable .npz"):
        open_dataset(tmp_path / "x.npz")


def test_an_npz_of_object_arrays_is_refused_without_unpickling(tmp_path):
    np.savez(
        tmp_path / "x.npz", images=np.zeros((2, 2, 2), np.uint8), labels=np.array([{"a": 1}, 2], dtype=object)
    )
    with pytest.raises(DatasetError, match="needs pickle"):
        open_dataset(tmp_path / "x.npz")


def test_invalid_jsonl_line_names_the_line(tmp_path):
    (tmp_path / "l.jsonl").write_text('{"path": "x.png", "label": 0}\nnot json\n')
    with pytest.raises(DatasetError, match=r"l.jsonl:2 is not valid JSON"):
        open_dataset(tmp_path / "l.jsonl")


def test_sixteen_bit_grey_images_are_rescaled_not_clipped_to_white(tmp_path):
    root = tmp_path / "d" / "a"
    root.mkdir(parents=True)
    Image.fromarray(np.array([[0, 65535], [32896, 257]], dtype=np.uint16)).save(root / "deep.png")
    save_png(tmp_path / "d" / "b" / "x.png", 1)
    image = np.asarray(open_dataset(tmp_path / "d").load_image(0))
    assert image[..., 0].tolist() == [[0, 255], [128, 1]]


def _count_decodes(monkeypatch) -> list[str]:
    from analyzer.datasets import images

    decoded: list[str] = []
    real = images.FileLoader.load

    def counting(self, row):
        decoded.append(self.paths[row])
        return real(self, row)

    monkeypatch.setattr(images.FileLoader, "load", counting)
    return decoded


def test_a_remembered_check_reopens_an_unchanged_folder_without_decoding(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 3})
    checks = tmp_path / "cache" / "checks"
    decoded = _count_decodes(monkeypatch)
    first = open_dataset(root, check_cache=checks)
    assert len(decoded) == 6 and len(list(checks.glob("*.json"))) == 1
    decoded.clear()
    second = open_dataset(root, check_cache=checks)
    assert decoded == [] and second.fingerprint == first.fingerprint and second.checked


@pytest.mark.parametrize("damage", [corrupt, truncate], ids=["corrupt", "truncated"])
def test_a_file_damaged_after_a_remembered_check_is_still_caught(tmp_path, damage):
    root = make_folder(tmp_path / "d", {"a": 3, "b": 3})
    checks = tmp_path / "checks"
    open_dataset(root, check_cache=checks)
    damage(root / "b" / "001.png")  # size and mtime change, so the record no longer applies
    with pytest.raises(DatasetError, match="b/001.png"):
        open_dataset(root, check_cache=checks)
    ds = open_dataset(root, check_cache=checks, skip_bad=True)  # the bad result is remembered too
    assert [sample_id for sample_id, _ in ds.skipped] == ["b/001.png"]


def test_a_damaged_check_record_is_ignored_and_rewritten(tmp_path, monkeypatch):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    checks = tmp_path / "checks"
    open_dataset(root, check_cache=checks)
    (record,) = checks.glob("*.json")
    record.write_text("{not json")
    decoded = _count_decodes(monkeypatch)
    assert len(open_dataset(root, check_cache=checks)) == 4
    assert len(decoded) == 4 and len(json.loads(record.read_text())["value"]["reasons"]) == 4
    decoded.clear()
    open_dataset(root, check_cache=checks)
    assert decoded == []


def _csv_dataset(root: Path, labels: list[str]) -> Path:
    for i in range(len(labels)):
        save_png(root / f"{i}.png", i)
    table = root / "labels.csv"
    table.write_text("path,label\n" + "".join(f"{i}.png,{label}\n" for i, label in enumerate(labels)))
    return table


def test_continuous_labels_are_refused_as_regression_targets_before_any_decode(tmp_path, monkeypatch):
    values = np.random.default_rng(0).normal(size=30)
    table = _csv_dataset(tmp_path, [f"{v:.4f}" for v in values])
    decoded = _count_decodes(monkeypatch)
    with pytest.raises(DatasetError, match="regression") as info:
        open_dataset(table)
    assert "classification" in str(info.value) and "bin the targets" in info.value.fix
    assert decoded == []


@pytest.mark.parametrize("labels", [["1.0", "2.0"] * 15, ["0.5", "1.5", "2.5"] * 10], ids=["whole", "few"])
def test_float_class_labels_are_still_classes(tmp_path, labels):
    ds = open_dataset(_csv_dataset(tmp_path, labels))
    assert len(ds) == 30 and len(ds.class_names) == len(set(labels))
