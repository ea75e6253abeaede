"""The Dataset contract (``analyzer.contracts.Dataset``), checked for every registered dataset format, in the spirit
of scikit-learn's ``test_common.py``: each format writes a tiny dataset through its fixture below, and every test
runs over every format. A newly registered format without a fixture fails
``test_every_registered_format_has_a_fixture`` (and every test of that format) until one is added here.

Format-specific behaviour (columns, splits, label parsing, bad rows) stays in tests/analyzer/datasets/test_*.py.
"""

from __future__ import annotations

import json
import pickle
import shutil
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from analyzer import contracts
from analyzer.datasets import available_formats, open_dataset
from analyzer.errors import DatasetError

# 12 images, 3 classes of 4: image k is a solid 8×8 RGB square of value 20k + 7, so every image tells its row.
N_IMAGES, SIZE = 12, 8
LABELS = ["ant", "bee", "cat"] * 4
GARBAGE = b"\x89PNG\r\n\x1a\n not an image at all"


def make_images(changed: int | None = None) -> np.ndarray:
    """N×8×8×3 uint8; ``changed`` alters one pixel of that image (same label, different content)."""
    images = np.stack([np.full((SIZE, SIZE, 3), 20 * k + 7, np.uint8) for k in range(N_IMAGES)])
    if changed is not None:
        images[changed, SIZE - 1, SIZE - 1, 2] += 1
    return images


def _png(path: Path, array: np.ndarray) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array).save(path)
    return path.name


# ------------------------------------------------------------------------------------- one writer per format
def write_imagefolder(root: Path, images: np.ndarray, labels: list[str]) -> str:
    for k, (image, label) in enumerate(zip(images, labels, strict=True)):
        _png(root / "data" / label / f"{k:03d}.png", image)
    return str(root / "data")


def _image_files(root: Path, images: np.ndarray) -> list[str]:
    return [f"img/{_png(root / 'img' / f'{k:03d}.png', image)}" for k, image in enumerate(images)]


def write_csv(root: Path, images: np.ndarray, labels: list[str]) -> str:
    rows = zip(_image_files(root, images), labels, strict=True)
    (root / "labels.csv").write_text("path,label\n" + "".join(f"{p},{label}\n" for p, label in rows))
    return str(root / "labels.csv")


def write_jsonl(root: Path, images: np.ndarray, labels: list[str]) -> str:
    rows = zip(_image_files(root, images), labels, strict=True)
    lines = [json.dumps({"path": p, "label": label}) for p, label in rows]
    (root / "labels.jsonl").write_text("\n".join(lines) + "\n")
    return str(root / "labels.jsonl")


def write_npz(root: Path, images: np.ndarray, labels: list[str]) -> str:
    root.mkdir(parents=True, exist_ok=True)
    np.savez(root / "data.npz", images=images, labels=np.array(labels))
    return str(root / "data.npz")


def write_hf(root: Path, images: np.ndarray, labels: list[str]) -> str:
    datasets = pytest.importorskip("datasets")
    part = datasets.Dataset.from_dict({"image": [Image.fromarray(a) for a in images], "label": labels})
    part.save_to_disk(str(root / "hf"))
    return str(root / "hf")


# ----------------------------------------------------------------------------- one damaged input per format
def _damage_a_file(write: Callable[[Path, np.ndarray, list[str]], str]) -> Callable[[Path], str]:
    """A dataset of ``write``'s format whose image files include one that is not an image."""

    def damaged(root: Path) -> str:
        spec = write(root, make_images(), LABELS)
        victim = sorted(p for p in root.rglob("*.png"))[5]
        victim.write_bytes(GARBAGE)
        return spec

    return damaged


def damaged_npz(root: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / "data.npz").write_bytes(b"PK\x03\x04 a truncated zip archive")
    return str(root / "data.npz")


def damaged_hf(root: Path) -> str:
    datasets = pytest.importorskip("datasets")
    features = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string")})
    cells = [{"bytes": GARBAGE if k == 5 else None, "path": None} for k in range(N_IMAGES)]
    for k, image in enumerate(make_images()):
        if k != 5:
            cells[k] = {"bytes": _png_bytes(image), "path": None}
    datasets.Dataset.from_dict({"image": cells, "label": LABELS}, features=features).save_to_disk(
        str(root / "hf")
    )
    return str(root / "hf")


def _png_bytes(array: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


@dataclass(frozen=True)
class FormatFixture:
    """How the suite makes a dataset of one format.

    ``write(root, images, labels) -> spec`` writes the given N×H×W×3 images and string labels under ``root``;
    formats that cannot hold arbitrary data (built-in sets) give ``builtin``, a spec of fixed content, instead.
    ``damaged(root) -> spec`` writes an input of that format that must not open (a corrupt image, a broken file).
    """

    damaged: Callable[[Path], str]
    write: Callable[[Path, np.ndarray, list[str]], str] | None = None
    builtin: str | None = None


FIXTURES: dict[str, FormatFixture] = {
    "imagefolder": FormatFixture(write=write_imagefolder, damaged=_damage_a_file(write_imagefolder)),
    "csv": FormatFixture(write=write_csv, damaged=_damage_a_file(write_csv)),
    "jsonl": FormatFixture(write=write_jsonl, damaged=_damage_a_file(write_jsonl)),
    "npz": FormatFixture(write=write_npz, damaged=damaged_npz),
    "hf": FormatFixture(write=write_hf, damaged=damaged_hf),
    "sklearn": FormatFixture(builtin="sklearn:digits", damaged=lambda root: "sklearn:no-such-set"),
}

FORMATS = list(available_formats())


def fixture_for(name: str) -> FormatFixture:
    if name not in FIXTURES:
        pytest.fail(
            f"dataset format {name!r} is registered but has no fixture in tests/analyzer/datasets/test_common.py: "
            "add a FormatFixture (a writer of a tiny dataset and a damaged input) to FIXTURES"
        )
    return FIXTURES[name]


def make_spec(name: str, root: Path, images: np.ndarray | None = None) -> str:
    """A tiny dataset of format ``name`` under ``root`` (the fixed built-in set for formats that cannot write)."""
    fixture = fixture_for(name)
    if fixture.write is None:
        assert fixture.builtin is not None, f"fixture {name!r} has neither a writer nor a built-in spec"
        return fixture.builtin
    return fixture.write(root, make_images() if images is None else images, LABELS)


def writable(name: str) -> FormatFixture:
    fixture = fixture_for(name)
    if fixture.write is None:
        pytest.skip(f"{name} is a built-in set of fixed content: nothing to write or change")
    return fixture


# ---------------------------------------------------------------------------------------------------- tests
def test_every_registered_format_has_a_fixture():
    missing = sorted(set(FORMATS) - set(FIXTURES))
    assert not missing, (
        f"dataset format(s) {missing} have no fixture: add a FormatFixture for each to FIXTURES in "
        "tests/analyzer/datasets/test_common.py"
    )
    assert not set(FIXTURES) - set(FORMATS), "FIXTURES names a format that is no longer registered"


@pytest.mark.parametrize("name", FORMATS)
def test_opened_dataset_satisfies_the_contract(name, tmp_path):
    ds = open_dataset(make_spec(name, tmp_path))
    assert isinstance(ds, contracts.Dataset)
    assert ds.format == name
    assert len(ds) == len(ds.sample_ids) == len(ds.labels) > 0
    assert len(set(ds.sample_ids)) == len(ds), "sample ids must be unique"
    assert all(isinstance(sample_id, str) and sample_id for sample_id in ds.sample_ids)
    assert len(ds.class_names) == len(np.unique(ds.labels)) and all(
        isinstance(c, str) for c in ds.class_names
    )
    assert len(ds.fingerprint) == 64 and int(ds.fingerprint, 16) >= 0
    assert ds.skipped == [] and isinstance(ds.problems, list) and ds.checked
    for i in (0, len(ds) - 1, -1):
        image = ds.load_image(i)
        assert isinstance(image, Image.Image) and image.mode == "RGB"
    with pytest.raises(IndexError):
        ds.load_image(len(ds))
    block = json.loads(json.dumps(ds.to_dict()))
    assert block["n_samples"] == len(ds) and block["fingerprint"] == ds.fingerprint
    assert block["n_classes"] == len(ds.class_names) and block["skipped"] == []


@pytest.mark.parametrize("name", FORMATS)
def test_written_images_and_labels_read_back_unchanged(name, tmp_path):
    writable(name)
    ds = open_dataset(make_spec(name, tmp_path))
    read = sorted((int(np.asarray(ds.load_image(i))[0, 0, 0]), str(ds.labels[i])) for i in range(len(ds)))
    assert read == sorted((20 * k + 7, LABELS[k]) for k in range(N_IMAGES))
    assert ds.class_names == sorted(set(LABELS))
    assert np.asarray(ds.load_image(0)).shape == (SIZE, SIZE, 3)


@pytest.mark.parametrize("name", FORMATS)
def test_reopening_gives_the_same_samples_and_fingerprint(name, tmp_path):
    spec = make_spec(name, tmp_path)
    first, again = open_dataset(spec), open_dataset(spec)
    assert first.fingerprint == again.fingerprint
    assert first.sample_ids == again.sample_ids and np.array_equal(first.labels, again.labels)
    # an unused seed selects nothing, so it must not change the fingerprint (cached features stay valid)
    assert open_dataset(spec, seed=7).fingerprint == first.fingerprint


@pytest.mark.parametrize("name", FORMATS)
def test_changed_pixels_change_the_fingerprint(name, tmp_path):
    writable(name)
    spec = make_spec(name, tmp_path)
    before = open_dataset(spec).fingerprint
    for child in tmp_path.iterdir():  # rewrite the same spec with one pixel of one image changed
        shutil.rmtree(child) if child.is_dir() else child.unlink()
    assert make_spec(name, tmp_path, make_images(changed=3)) == spec
    assert open_dataset(spec).fingerprint != before


@pytest.mark.parametrize("name", FORMATS)
def test_max_per_class_is_stratified_deterministic_and_keeps_source_order(name, tmp_path):
    spec = make_spec(name, tmp_path)
    full = open_dataset(spec)
    counts = Counter(full.labels.tolist())
    cap = max(1, min(counts.values()) // 2)
    picked = open_dataset(spec, max_per_class=cap, seed=0)
    assert picked.sample_ids == open_dataset(spec, max_per_class=cap, seed=0).sample_ids
    assert Counter(picked.labels.tolist()) == {label: min(n, cap) for label, n in counts.items()}
    position = {sample_id: i for i, sample_id in enumerate(full.sample_ids)}
    rows = [position[sample_id] for sample_id in picked.sample_ids]
    assert rows == sorted(rows), "a subsample keeps the source order"
    assert [str(v) for v in picked.labels] == [str(full.labels[r]) for r in rows]
    assert picked.fingerprint != full.fingerprint
    # with subsampling the seed chooses the samples: some seed picks others, and it enters the fingerprint
    others = {tuple(open_dataset(spec, max_per_class=cap, seed=s).sample_ids) for s in range(1, 6)}
    assert others - {tuple(picked.sample_ids)}
    assert open_dataset(spec, max_per_class=cap, seed=1).fingerprint != picked.fingerprint


@pytest.mark.parametrize("name", FORMATS)
def test_dataset_pickles_for_dataloader_workers(name, tmp_path):
    ds = open_dataset(make_spec(name, tmp_path))
    restored = pickle.loads(pickle.dumps(ds))
    assert restored.fingerprint == ds.fingerprint and restored.sample_ids == ds.sample_ids
    assert np.array_equal(np.asarray(restored.load_image(len(ds) - 1)), np.asarray(ds.load_image(-1)))


@pytest.mark.parametrize("name", FORMATS)
def test_damaged_input_is_a_dataset_error_saying_what_to_do(name, tmp_path):
    spec = fixture_for(name).damaged(tmp_path)
    with pytest.raises(DatasetError) as info:
        open_dataset(f"{name}:{spec}" if not spec.startswith(f"{name}:") else spec)
    assert info.value.fix, "a user's mistake carries the fix"
