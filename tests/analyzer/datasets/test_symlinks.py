"""Image folders with symlinks are read once, as written: no loop multiplies the data, no file counts twice."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from analyzer.cli import main
from analyzer.datasets import open_dataset
from tests.fixtures.make_run import make_image_folder


def _loop_folder(tmp_path: Path) -> Path:
    """The issue's case: 3 classes x 6 images, ``class0/loop -> ..`` and ``class1/self -> class1``."""
    root = make_image_folder(tmp_path / "loops", classes=3, per_class=6)
    (root / "class0" / "loop").symlink_to("..")
    (root / "class1" / "self").symlink_to(root / "class1")
    return root


def test_a_symlink_loop_does_not_multiply_the_dataset(tmp_path: Path) -> None:
    dataset = open_dataset(str(_loop_folder(tmp_path)), validate=False)
    assert len(dataset) == 18  # 5 658 before
    assert sorted(set(dataset.labels.tolist())) == ["class0", "class1", "class2"]
    assert all(
        sid.startswith(label + "/") and sid.count("/") == 1
        for sid, label in zip(dataset.sample_ids, dataset.labels, strict=True)
    )
    note = next(p for p in dataset.problems if "symlinked folder(s)" in p)
    assert "class0/loop" in note and "class1/self" in note


def test_a_link_to_another_class_is_not_followed_so_no_image_gets_a_wrong_label(tmp_path: Path) -> None:
    root = make_image_folder(tmp_path / "cross", classes=2, per_class=3)
    (root / "class0" / "more").symlink_to(root / "class1")
    dataset = open_dataset(str(root), validate=False)
    assert [str(x) for x in dataset.labels].count("class0") == 3 and len(dataset) == 6


def test_a_folder_outside_the_dataset_is_followed_once_and_a_file_reached_twice_counts_once(
    tmp_path: Path,
) -> None:
    outside = make_image_folder(tmp_path / "outside", classes=1, per_class=4) / "class0"
    root = make_image_folder(tmp_path / "data", classes=2, per_class=3)
    (root / "class0" / "extra").symlink_to(outside)  # the same real folder: not read a second time
    (root / "class0" / "again").symlink_to(outside)  # followed (first in name order): 4 more images of class0
    (outside / "up").symlink_to(outside)  # a loop outside the dataset
    (root / "class1" / "dup.png").symlink_to(root / "class1" / "00.png")  # one file under two names
    dataset = open_dataset(str(root), validate=False)
    ids = list(dataset.sample_ids)
    assert len(dataset) == 3 + 4 + 3
    assert sum(i.startswith("class0/again/") for i in ids) == 4 and not any(
        "extra" in i or "up" in i for i in ids
    )
    assert "class1/00.png" in ids and "class1/dup.png" not in ids
    assert any("reached twice through symlinks are counted once" in p for p in dataset.problems)


def test_extract_on_the_loop_case_reads_18_images_and_says_why(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from tests.fixtures.make_run import make_torchscript_model

    spec = make_torchscript_model(tmp_path / "m.pt", seed=0)
    root = _loop_folder(tmp_path)
    code = main(
        [
            "extract",
            "--data",
            str(root),
            "--models",
            spec,
            "--cache-dir",
            str(tmp_path / "c"),
            "--no-progress",
        ]
    )
    out, err = capfd.readouterr()
    assert code == 0, err
    assert "18x" in out and "not followed" in err
    assert os.path.islink(root / "class0" / "loop")  # nothing changed on disk
