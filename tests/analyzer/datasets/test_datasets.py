"""Dataset readers: each format, the common options (split, subsampling), fingerprints, and the shared notMNIST data."""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from analyzer.datasets import Dataset, available_formats, open_dataset
from analyzer.datasets.labels import labels_with_gaps, normalize_labels
from analyzer.datasets.subsample import stratified_subsample
from analyzer.errors import DatasetError
from tests.conftest import BENCHMARKS, require_shared


def save_png(path: Path, value: int, *, mode: str = "RGB", size: int = 8) -> None:
    """A tiny solid image whose first pixel encodes ``value`` (0..255), so tests can tell images apart."""
    path.parent.mkdir(parents=True, exist_ok=True)
    channels = {"RGB": 3, "RGBA": 4, "L": 1}[mode]
    array = np.full((size, size, channels), value, dtype=np.uint8)
    if mode == "RGBA":
        array[..., 3] = 255
    Image.fromarray(array[..., 0] if mode == "L" else array, mode).save(path)


def make_folder(root: Path, counts: dict[str, int]) -> Path:
    """root/<class>/<i>.png with ``counts[class]`` images each; pixel value = 10*class_index + i."""
    for k, (name, count) in enumerate(counts.items()):
        for i in range(count):
            save_png(root / name / f"{i:03d}.png", 10 * k + i)
    return root


def pixel(image: Image.Image) -> int:
    return int(np.asarray(image)[0, 0, 0])


# ---------------------------------------------------------------------------------------------------------------
# image folder
# ---------------------------------------------------------------------------------------------------------------
def test_image_folder_labels_are_class_folder_names_and_ids_are_relative_paths(tmp_path):
    root = make_folder(tmp_path / "pets", {"cat": 3, "dog": 2})
    ds = open_dataset(root)
    assert isinstance(ds, Dataset)
    assert len(ds) == 5
    assert ds.name == "pets"
    assert ds.format == "imagefolder"
    assert ds.sample_ids == ["cat/000.png", "cat/001.png", "cat/002.png", "dog/000.png", "dog/001.png"]
    assert ds.labels.tolist() == ["cat"] * 3 + ["dog"] * 2
    assert ds.class_names == ["cat", "dog"]
    assert ds.skipped == [] and ds.problems == []
    image = ds.load_image(3)
    assert image.mode == "RGB" and image.size == (8, 8)
    assert pixel(image) == 10  # dog/000.png
    assert ds.to_dict()["n_classes"] == 2 and ds.to_dict()["n_samples"] == 5


def test_image_folder_finds_nested_images_and_converts_grey_and_rgba_to_rgb(tmp_path):
    save_png(tmp_path / "d" / "a" / "x.png", 7, mode="L")
    save_png(tmp_path / "d" / "a" / "sub" / "y.PNG", 9, mode="RGBA")
    save_png(tmp_path / "d" / "b" / "z.jpg", 200)
    ds = open_dataset(tmp_path / "d")
    assert ds.sample_ids == ["a/sub/y.PNG", "a/x.png", "b/z.jpg"]
    for i in range(len(ds)):
        assert ds.load_image(i).mode == "RGB"
    assert np.asarray(ds.load_image(1)).tolist()[0][0] == [7, 7, 7]


def test_image_folder_reports_empty_class_folders_and_ignored_files(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    (root / "empty").mkdir()
    (root / "a" / "notes.txt").write_text("not an image")
    ds = open_dataset(root)
    assert ds.class_names == ["a", "b"]
    assert any("empty" in p for p in ds.problems)
    assert any("non-image" in p for p in ds.problems)


def test_image_folder_without_class_subfolders_is_an_error_saying_how_to_lay_it_out(tmp_path):
    save_png(tmp_path / "flat" / "x.png", 1)
    with pytest.raises(DatasetError, match="no class sub-folders") as info:
        open_dataset(tmp_path / "flat")
    assert "<class name>" in str(info.value)


def test_image_folder_split_is_a_subfolder_and_a_missing_one_is_an_error(tmp_path):
    make_folder(tmp_path / "d" / "train", {"a": 3, "b": 3})
    make_folder(tmp_path / "d" / "val", {"a": 1, "b": 2})
    ds = open_dataset(tmp_path / "d", split="val")
    assert len(ds) == 3 and ds.class_names == ["a", "b"]
    assert ds.name == "d-val"
    with pytest.raises(DatasetError, match="no split sub-folder 'test'"):
        open_dataset(tmp_path / "d", split="test")


def test_missing_dataset_path_is_an_error_listing_the_accepted_specs(tmp_path):
    with pytest.raises(DatasetError, match="does not exist") as info:
        open_dataset(tmp_path / "nowhere")
    assert "sklearn:" in str(info.value)


# ---------------------------------------------------------------------------------------------------------------
# CSV / JSONL
# ---------------------------------------------------------------------------------------------------------------
def write_images(root: Path, n: int) -> list[str]:
    names = [f"img/{i}.png" for i in range(n)]
    for i, name in enumerate(names):
        save_png(root / name, i)
    return names


def test_csv_paths_are_relative_to_the_file_and_integer_labels_stay_integers(tmp_path):
    names = write_images(tmp_path, 4)
    (tmp_path / "labels.csv").write_text(
        "path,label\n" + "".join(f"{n},{i % 2}\n" for i, n in enumerate(names))
    )
    ds = open_dataset(tmp_path / "labels.csv")
    assert ds.format == "csv"
    assert ds.sample_ids == names
    assert ds.labels.dtype == np.int64 and ds.labels.tolist() == [0, 1, 0, 1]
    assert ds.class_names == ["0", "1"]
    assert [pixel(ds.load_image(i)) for i in range(4)] == [0, 1, 2, 3]


def test_jsonl_reads_string_labels_and_an_absolute_path(tmp_path):
    names = write_images(tmp_path / "data", 3)
    rows = [{"path": names[0], "label": "cat"}, {"path": names[1], "label": "dog"}]
    rows.append({"path": str((tmp_path / "data" / names[2]).resolve()), "label": "dog"})
    (tmp_path / "data" / "labels.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    ds = open_dataset(tmp_path / "data" / "labels.jsonl")
    assert ds.format == "jsonl"
    assert ds.labels.tolist() == ["cat", "dog", "dog"]
    assert pixel(ds.load_image(2)) == 2


def test_csv_without_the_label_column_names_the_columns_found_and_the_option(tmp_path):
    names = write_images(tmp_path, 2)
    (tmp_path / "l.csv").write_text("path,target\n" + "".join(f"{n},a\n" for n in names))
    with pytest.raises(DatasetError, match="no label column 'label'") as info:
        open_dataset(tmp_path / "l.csv")
    assert "'target'" in str(info.value) and "--label-column" in str(info.value)
    ds = open_dataset(tmp_path / "l.csv", label_column="target")
    assert ds.labels.tolist() == ["a", "a"]


def test_csv_without_a_path_column_is_an_error_naming_the_option(tmp_path):
    (tmp_path / "l.csv").write_text("file,label\nx.png,a\n")
    with pytest.raises(DatasetError, match="no image path column") as info:
        open_dataset(tmp_path / "l.csv")
    assert "--image-column" in str(info.value)


def test_csv_missing_file_and_empty_label_are_listed_and_skippable(tmp_path):
    names = write_images(tmp_path, 3)
    text = f"path,label\n{names[0]},a\n{names[1]},\nimg/gone.png,b\n{names[2]},b\n"
    (tmp_path / "l.csv").write_text(text)
    with pytest.raises(DatasetError) as info:
        open_dataset(tmp_path / "l.csv")
    message = str(info.value)
    assert "img/gone.png" in message and "file not found" in message
    assert "empty label" in message and "--skip-bad" in message
    ds = open_dataset(tmp_path / "l.csv", skip_bad=True)
    assert ds.sample_ids == [names[0], names[2]]
    assert sorted(sample_id for sample_id, _ in ds.skipped) == sorted([names[1], "img/gone.png"])
    assert ds.to_dict()["skipped"][0][0] in (names[1], "img/gone.png")


def test_csv_listing_an_image_twice_is_an_error(tmp_path):
    names = write_images(tmp_path, 1)
    (tmp_path / "l.csv").write_text(f"path,label\n{names[0]},a\n{names[0]},b\n")
    with pytest.raises(DatasetError, match="more than once"):
        open_dataset(tmp_path / "l.csv")


def test_split_column_selects_rows_and_an_unknown_split_lists_the_values(tmp_path):
    names = write_images(tmp_path, 4)
    splits = ["train", "test", "train", "test"]
    body = "".join(f"{n},{i % 2},{s}\n" for i, (n, s) in enumerate(zip(names, splits, strict=True)))
    (tmp_path / "l.csv").write_text("path,label,split\n" + body)
    ds = open_dataset(tmp_path / "l.csv", split="test")
    assert ds.sample_ids == [names[1], names[3]]
    with pytest.raises(DatasetError, match=r"selects no sample.*\['test', 'train'\]"):
        open_dataset(tmp_path / "l.csv", split="validation")


def test_split_on_a_dataset_without_splits_is_an_error(tmp_path):
    names = write_images(tmp_path, 2)
    (tmp_path / "l.csv").write_text("path,label\n" + "".join(f"{n},a\n" for n in names))
    with pytest.raises(DatasetError, match="no split column"):
        open_dataset(tmp_path / "l.csv", split="train")


# ---------------------------------------------------------------------------------------------------------------
# npz
# ---------------------------------------------------------------------------------------------------------------
def test_npz_grey_images_become_rgb_and_class_names_name_the_label_values(tmp_path):
    images = np.arange(4 * 5 * 5, dtype=np.uint8).reshape(4, 5, 5)
    np.savez(
        tmp_path / "a.npz", images=images, labels=np.array([1, 0, 1, 1]), class_names=np.array(["x", "y"])
    )
    ds = open_dataset(tmp_path / "a.npz")
    assert ds.format == "npz"
    assert ds.sample_ids == ["row:0", "row:1", "row:2", "row:3"]
    assert ds.labels.tolist() == [1, 0, 1, 1]
    assert ds.class_names == ["x", "y"]
    rgb = np.asarray(ds.load_image(2))
    assert rgb.shape == (5, 5, 3)
    assert np.array_equal(rgb[..., 0], images[2]) and np.array_equal(rgb[..., 2], images[2])


def test_npz_colour_and_single_channel_layouts_load(tmp_path):
    rgb = np.random.default_rng(0).integers(0, 256, size=(3, 4, 4, 3), dtype=np.uint8)
    np.savez(tmp_path / "c.npz", images=rgb, labels=np.array(["a", "b", "b"]))
    assert np.array_equal(np.asarray(open_dataset(tmp_path / "c.npz").load_image(1)), rgb[1])
    np.savez(tmp_path / "g.npz", images=rgb[..., :1], labels=np.array([0, 1, 1]))
    assert np.asarray(open_dataset(tmp_path / "g.npz").load_image(0)).shape == (4, 4, 3)


def test_npz_label_count_that_does_not_match_the_images_is_an_error(tmp_path):
    np.savez(tmp_path / "a.npz", images=np.zeros((4, 3, 3), np.uint8), labels=np.array([0, 1, 0]))
    with pytest.raises(DatasetError, match="4 images but 3 labels"):
        open_dataset(tmp_path / "a.npz")


def test_npz_without_labels_names_the_arrays_found(tmp_path):
    np.savez(tmp_path / "a.npz", images=np.zeros((2, 3, 3), np.uint8), y=np.array([0, 1]))
    with pytest.raises(DatasetError, match=r"no 'labels' array.*\['images', 'y'\]"):
        open_dataset(tmp_path / "a.npz")


def test_npz_label_values_outside_class_names_are_reported_as_unknown(tmp_path):
    np.savez(
        tmp_path / "a.npz",
        images=np.zeros((3, 3, 3), np.uint8),
        labels=np.array([0, 1, 5]),
        class_names=["a", "b"],
    )
    with pytest.raises(DatasetError, match=r"label value\(s\) \[5\] have no entry in class_names"):
        open_dataset(tmp_path / "a.npz")


@pytest.mark.parametrize(
    ("images", "message"),
    [
        (np.zeros((2, 3, 8, 8), np.uint8), "channels-first"),
        (np.zeros((2, 8, 8), np.float32), "dtype float32"),
        (np.full((2, 8, 8), 300, np.int32), "outside 0..255"),
        (np.zeros((2, 8), np.uint8), "expected N×H×W"),
    ],
)
def test_npz_images_in_an_unusable_layout_or_dtype_are_refused_with_the_conversion(tmp_path, images, message):
    np.savez(tmp_path / "a.npz", images=images, labels=np.array([0, 1]))
    with pytest.raises(DatasetError, match=message):
        open_dataset(tmp_path / "a.npz")


def test_npz_splits_array_selects_rows(tmp_path):
    np.savez(
        tmp_path / "a.npz",
        images=np.zeros((4, 3, 3), np.uint8),
        labels=np.array([0, 1, 0, 1]),
        splits=np.array(["train", "train", "test", "test"]),
    )
    assert open_dataset(tmp_path / "a.npz", split="test").sample_ids == ["row:2", "row:3"]


# ---------------------------------------------------------------------------------------------------------------
# Hugging Face save_to_disk
# ---------------------------------------------------------------------------------------------------------------
def hf_images(n: int) -> list[Image.Image]:
    return [Image.fromarray(np.full((6, 6, 3), 10 * i, np.uint8)) for i in range(n)]


def test_hf_dataset_uses_classlabel_names_and_decodes_images(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.ClassLabel(names=["ant", "bee"])}
    )
    hf = datasets.Dataset.from_dict({"image": hf_images(4), "label": [1, 0, 1, 1]}, features=features)
    hf.save_to_disk(str(tmp_path / "hf"))
    ds = open_dataset(tmp_path / "hf")
    assert ds.format == "hf"
    assert ds.labels.tolist() == [1, 0, 1, 1]
    assert ds.class_names == ["ant", "bee"]
    assert ds.sample_ids[0] == "row:0"
    assert pixel(ds.load_image(3)) == 30
    restored = pickle.loads(pickle.dumps(ds))  # DataLoader workers receive the dataset pickled
    assert pixel(restored.load_image(2)) == 20


def test_hf_columns_are_configurable_and_a_missing_one_names_the_option(tmp_path):
    datasets = pytest.importorskip("datasets")
    pixels = [np.full((4, 4), 5 * i, np.uint8).tolist() for i in range(3)]
    hf = datasets.Dataset.from_dict({"pixels": pixels, "species": ["x", "y", "y"]})
    hf.save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(DatasetError, match="(?s)no column 'image'.*--image-column"):
        open_dataset(tmp_path / "hf")
    ds = open_dataset(tmp_path / "hf", image_column="pixels", label_column="species")
    assert ds.labels.tolist() == ["x", "y", "y"]
    assert np.asarray(ds.load_image(2)).tolist()[0][0] == [10, 10, 10]


def test_hf_dataset_dict_needs_a_split_and_uses_the_chosen_one(tmp_path):
    datasets = pytest.importorskip("datasets")
    part = datasets.Dataset.from_dict({"image": hf_images(2), "label": [0, 1]})
    datasets.DatasetDict({"train": part, "test": part.select([1])}).save_to_disk(str(tmp_path / "dd"))
    with pytest.raises(DatasetError, match="pass --split"):
        open_dataset(tmp_path / "dd")
    assert len(open_dataset(tmp_path / "dd", split="test")) == 1
    with pytest.raises(DatasetError, match=r"no split 'val'; its splits are \['train', 'test'\]"):
        open_dataset(tmp_path / "dd", split="val")


def test_hf_unlabelled_rows_and_corrupt_image_bytes_are_reported(tmp_path):
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.ClassLabel(names=["a", "b"])})
    cells = [{"bytes": img_bytes(i), "path": None} for i in range(3)] + [
        {"bytes": b"\x89PNG garbage", "path": None}
    ]
    hf = datasets.Dataset.from_dict({"image": cells, "label": [0, -1, 1, 1]}, features=features)
    hf.save_to_disk(str(tmp_path / "hf"))
    with pytest.raises(DatasetError, match="row:1: no label"):
        open_dataset(tmp_path / "hf")
    ds = open_dataset(tmp_path / "hf", skip_bad=True)
    assert ds.sample_ids == ["row:0", "row:2"]
    assert [sample_id for sample_id, _ in ds.skipped] == ["row:1", "row:3"]
    assert "cannot decode" in ds.skipped[1][1]


def img_bytes(value: int) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(np.full((4, 4, 3), value, np.uint8)).save(buffer, format="PNG")
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------------------------
# sklearn:digits and the registry
# ---------------------------------------------------------------------------------------------------------------
def test_sklearn_digits_is_1797_grey_8x8_images_scaled_to_0_255():
    ds = open_dataset("sklearn:digits")
    assert ds.format == "sklearn" and ds.name == "digits"
    assert len(ds) == 1797
    assert ds.class_names == [str(d) for d in range(10)]
    image = np.asarray(ds.load_image(0))
    assert image.shape == (8, 8, 3) and image.dtype == np.uint8
    assert np.array_equal(image[..., 0], image[..., 1])
    stack = ds._table.loader.images
    assert stack.max() == 255 and stack.min() == 0


def test_unknown_builtin_lists_the_available_ones():
    with pytest.raises(DatasetError, match="(?s)unknown built-in dataset 'sklearn:iris'.*sklearn:digits"):
        open_dataset("sklearn:iris")


def test_explicit_format_prefix_reads_a_label_file_with_another_suffix(tmp_path):
    names = write_images(tmp_path, 2)
    (tmp_path / "labels.txt").write_text("path,label\n" + "".join(f"{n},a\n" for n in names))
    assert len(open_dataset(f"csv:{tmp_path / 'labels.txt'}")) == 2
    assert set(available_formats()) >= {"imagefolder", "csv", "jsonl", "npz", "hf", "sklearn"}


# ---------------------------------------------------------------------------------------------------------------
# subsampling
# ---------------------------------------------------------------------------------------------------------------
def test_a_class_keeps_its_subsample_when_another_class_changes():
    labels = np.repeat(["a", "b"], [30, 30])
    with_c = np.concatenate([labels, np.repeat(["c"], 30)])
    without_c = stratified_subsample(labels, 5, seed=1)
    with_c_picked = stratified_subsample(with_c, 5, seed=1)
    # a and b occupy positions 0..59 in both, so their picks (the first 10) must be identical.
    assert without_c.tolist() == with_c_picked[:10].tolist()
    assert len(with_c_picked) == 15


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(min_value=1, max_value=12), min_size=1, max_size=5),
    cap=st.integers(min_value=1, max_value=8),
    seed=st.integers(min_value=0, max_value=2**31),
)
def test_stratified_subsample_takes_min_of_count_and_cap_from_every_class(counts, cap, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    rng = np.random.default_rng(seed)
    labels = labels[rng.permutation(len(labels))]
    picked = stratified_subsample(labels, cap, seed)
    assert picked.tolist() == sorted(set(picked.tolist()))
    assert np.bincount(labels[picked], minlength=len(counts)).tolist() == [min(c, cap) for c in counts]
    assert np.array_equal(picked, stratified_subsample(labels, cap, seed))


def test_max_per_class_below_one_is_a_config_error_as_in_the_config_file():
    from analyzer.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 1"):
        open_dataset("sklearn:digits", max_per_class=0)


# ---------------------------------------------------------------------------------------------------------------
# fingerprints
# ---------------------------------------------------------------------------------------------------------------
def test_fingerprint_is_stable_for_unchanged_files_and_changes_when_a_file_is_touched(tmp_path):
    root = make_folder(tmp_path / "d", {"a": 2, "b": 2})
    base = open_dataset(root).fingerprint
    assert len(base) == 64 and int(base, 16) >= 0
    assert open_dataset(root).fingerprint == base
    target = root / "b" / "001.png"
    stat = target.stat()
    os.utime(target, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = open_dataset(root).fingerprint
    assert touched != base
    save_png(root / "b" / "002.png", 99)
    assert open_dataset(root).fingerprint not in (base, touched)


def test_fingerprint_changes_with_subsampling_split_and_columns_but_not_an_unused_seed(tmp_path):
    labels = np.repeat([0, 1], 6)
    np.savez(
        tmp_path / "a.npz",
        images=np.arange(12 * 4, dtype=np.uint8).reshape(12, 2, 2),
        labels=labels,
        splits=np.array(["x", "y"] * 6),
    )
    path = tmp_path / "a.npz"
    prints = {
        "all": open_dataset(path).fingerprint,
        "cap4": open_dataset(path, max_per_class=4).fingerprint,
        "cap4-seed1": open_dataset(path, max_per_class=4, seed=1).fingerprint,
        "cap5": open_dataset(path, max_per_class=5).fingerprint,
        "split": open_dataset(path, split="x").fingerprint,
    }
    assert len(set(prints.values())) == len(prints)
    # Without subsampling the seed selects nothing, so it must not invalidate cached features.
    assert open_dataset(path, seed=7).fingerprint == prints["all"]


def test_npz_fingerprint_follows_the_pixels_not_the_file(tmp_path):
    images = np.arange(3 * 4, dtype=np.uint8).reshape(3, 2, 2)
    labels = np.array([0, 1, 1])
    np.savez(tmp_path / "a.npz", images=images, labels=labels)
    np.savez_compressed(tmp_path / "b.npz", images=images, labels=labels)
    assert open_dataset(tmp_path / "a.npz").fingerprint == open_dataset(tmp_path / "b.npz").fingerprint
    changed = images.copy()
    changed[2, 1, 1] += 1
    np.savez(tmp_path / "c.npz", images=changed, labels=labels)
    assert open_dataset(tmp_path / "c.npz").fingerprint != open_dataset(tmp_path / "a.npz").fingerprint
    np.savez(tmp_path / "d.npz", images=images, labels=np.array([0, 1, 0]))
    assert open_dataset(tmp_path / "d.npz").fingerprint != open_dataset(tmp_path / "a.npz").fingerprint


def test_fingerprint_changes_with_the_label_column(tmp_path):
    names = write_images(tmp_path, 2)
    (tmp_path / "l.csv").write_text("path,label,coarse\n" + "".join(f"{n},a,z\n" for n in names))
    by_label = open_dataset(tmp_path / "l.csv").fingerprint
    by_coarse = open_dataset(tmp_path / "l.csv", label_column="coarse").fingerprint
    assert by_label != by_coarse


# ---------------------------------------------------------------------------------------------------------------
# the shared notMNIST benchmark
# ---------------------------------------------------------------------------------------------------------------
@pytest.mark.shared
def test_notmnist_folder_and_npz_give_the_same_1000_samples_in_10_classes():
    folder = open_dataset(require_shared(BENCHMARKS / "notmnist" / "target_images"))
    arrays = open_dataset(require_shared(BENCHMARKS / "notmnist" / "target.npz"))
    for ds in (folder, arrays):
        assert len(ds) == 1000
        assert ds.class_names == list("ABCDEFGHIJ")
        assert ds.skipped == [] and ds.problems == []
    # Image-folder files are named by their notMNIST index, which the npz records in source_index.
    source_index = np.load(BENCHMARKS / "notmnist" / "target.npz")["source_index"].tolist()
    for i in (0, 500, 999):
        stem = int(Path(folder.sample_ids[i]).stem)
        row = source_index.index(stem)
        assert np.array_equal(np.asarray(folder.load_image(i)), np.asarray(arrays.load_image(row)))
        assert (
            folder.class_names[list(folder.classes).index(folder.labels[i])]
            == arrays.class_names[arrays.labels[row]]
        )


@pytest.mark.parametrize(
    ("raw", "expected", "kind"),
    [
        (["3", " 1 ", "2"], [3, 1, 2], "i"),
        ([3, 1, 2], [3, 1, 2], "i"),
        (["0.5", "1"], [0.5, 1.0], "f"),
        ([1.0, 2.0], [1.0, 2.0], "f"),
        (["cat", "3"], ["cat", "3"], "U"),
        ([True, 1], ["True", "1"], "U"),
    ],
)
def test_text_labels_become_integers_floats_or_strings(raw, expected, kind):
    labels = normalize_labels(raw)
    assert labels.dtype.kind == kind and labels.tolist() == expected


def test_missing_labels_are_located_and_the_rest_keep_their_type():
    labels, missing = labels_with_gaps(["a", "", None, "nan", " b "])
    assert missing == [1, 2, 3]
    assert labels[[0, 4]].tolist() == ["a", "b"]


def test_label_file_over_class_folders_reports_unknown_and_mismatched_labels(tmp_path):
    make_folder(tmp_path, {"cat": 3, "dog": 3})
    rows = [("cat/000.png", "cat"), ("cat/001.png", "cat"), ("cat/002.png", "dgo")]
    rows += [("dog/000.png", "dog"), ("dog/001.png", "dog"), ("dog/002.png", "cat")]
    (tmp_path / "labels.csv").write_text("path,label\n" + "".join(f"{p},{label}\n" for p, label in rows))
    ds = open_dataset(tmp_path / "labels.csv")
    assert len(ds) == 6 and ds.class_names == ["cat", "dgo", "dog"]
    assert any("['dgo'] name no class folder" in p for p in ds.problems)
    assert any("1 row(s) are labelled with another class" in p and "dog/002.png" in p for p in ds.problems)


def test_label_file_whose_folders_are_not_classes_gets_no_folder_warning(tmp_path):
    names = write_images(tmp_path, 4)  # all under img/
    (tmp_path / "l.csv").write_text(
        "path,label\n" + "".join(f"{n},{'ab'[i % 2]}\n" for i, n in enumerate(names))
    )
    assert open_dataset(tmp_path / "l.csv").problems == []
