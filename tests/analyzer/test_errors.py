"""The error hierarchy: one class per fault wherever it is raised, and the helpers that word failures."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analyzer.errors import (
    AnalyzerError,
    BackboneError,
    ConfigError,
    DatasetError,
    DeviceError,
    Failure,
    InputFileError,
    RankingError,
    TruthError,
    describe,
    every_candidate_failed,
)
from analyzer.inputs import check_output_dir, check_output_file, read_user_text


def test_a_bad_max_per_class_is_a_config_error_in_the_config_and_the_dataset_layer(tmp_path: Path) -> None:
    from analyzer.datasets import open_dataset
    from analyzer.datasets.subsample import stratified_subsample
    from analyzer.request import RankRequest

    for value in (0, 2.5, "5"):
        with pytest.raises(ConfigError, match="max_per_class"):
            RankRequest(data="x", models=("timm:a",), max_per_class=value)  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="max_per_class"):
            open_dataset("sklearn:digits", max_per_class=value)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="at least 1"):
        stratified_subsample(np.array([0, 1]), 0, seed=0)
    assert RankRequest(data="x", models=("timm:a",), max_per_class=1).max_per_class == 1


@pytest.mark.parametrize("device", ["cpux", "gpu", "cuda:99"])
def test_a_bad_device_is_a_device_error_from_extraction_and_from_loading(device: str) -> None:
    from analyzer.device import resolve_device
    from analyzer.sources import load_backbone

    with pytest.raises(DeviceError, match="--device"):
        resolve_device(device)
    with pytest.raises(DeviceError, match="--device"):
        load_backbone("torchscript:/nonexistent.pt", device=device)


def test_a_bad_truth_csv_is_a_truth_error_from_every_reader(tmp_path: Path) -> None:
    from analyzer.probe import read_truth_csv
    from analyzer.truth import load_ground_truth

    bad = tmp_path / "t.csv"
    bad.write_text("model,accuracy\na,0.5\na,0.7\n")
    for read in (load_ground_truth, read_truth_csv):
        with pytest.raises(TruthError, match="model a listed twice"):
            read(bad)


def test_every_candidate_failed_says_a_shared_fix_once_and_keeps_different_ones_apart() -> None:
    same = every_candidate_failed(
        {"a": BackboneError("a is gone", "check the path"), "b": BackboneError("b is gone", "check the path")}
    )
    assert isinstance(same, RankingError) and same.fix == "check the path"
    assert same.message.splitlines() == ["every candidate failed (2):", "  a: a is gone", "  b: b is gone"]
    apart = every_candidate_failed(
        {"a": BackboneError("a is gone", "fix a"), "b": Failure("b broke", "fix b")}
    )
    assert isinstance(apart, RankingError) and apart.fix is None
    assert apart.message.splitlines()[1:] == [
        "  a: a is gone",
        "    fix: fix a",
        "  b: b broke",
        "    fix: fix b",
    ]


def test_an_internal_failure_among_the_candidates_is_not_reported_as_the_users_mistake() -> None:
    error = every_candidate_failed({"a": BackboneError("a is gone", "x"), "b": ValueError("bad shape")})
    assert not isinstance(error, AnalyzerError)
    assert "b: internal error: ValueError: bad shape" in str(error)
    assert describe(ValueError("x\ny")) == "ValueError: x y"
    assert describe(DatasetError("d", "f")) == "d (fix: f)"


def test_user_files_are_read_as_utf8_with_the_file_named(tmp_path: Path) -> None:
    text = tmp_path / "a.txt"
    text.write_bytes("\ufeffname\n".encode())
    assert read_user_text(text, what="list", fix="f") == "name\n"  # a BOM is dropped
    latin = tmp_path / "b.txt"
    latin.write_bytes("ok\nÄ\n".encode("latin-1"))
    with pytest.raises(InputFileError, match=r"b.txt is not UTF-8 text \(byte 0xc4 on line 2\)"):
        read_user_text(latin, what="list", fix="f", kind=InputFileError)
    with pytest.raises(TruthError, match="is a directory"):
        read_user_text(tmp_path, what="truth", fix="f", kind=TruthError)
    with pytest.raises(AnalyzerError, match="does not exist"):
        read_user_text(tmp_path / "none", what="list", fix="f")


def test_output_places_are_checked_without_creating_anything(tmp_path: Path) -> None:
    a_file = tmp_path / "f"
    a_file.write_text("x")
    assert check_output_dir(tmp_path / "new" / "run", flag="--out") == tmp_path / "new" / "run"
    assert not (tmp_path / "new").exists()
    with pytest.raises(AnalyzerError, match="is an existing file"):
        check_output_dir(a_file, flag="--out")
    with pytest.raises(AnalyzerError, match="lies below the file"):
        check_output_file(a_file / "t.csv", flag="--out")
    with pytest.raises(AnalyzerError, match="is a directory"):
        check_output_file(tmp_path, flag="--out")
