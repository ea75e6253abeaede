"""The ``extract`` and ``cache`` commands, end to end through ``analyzer.cli.main``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from analyzer.cli import main
from analyzer.commands._options import parse_models
from analyzer.errors import AnalyzerError
from analyzer.store import FeatureStore
from tests.analyzer.test_extract import make_image_folder
from tests.conftest import BENCHMARKS, require_shared


@pytest.fixture()
def models(tmp_path: Path) -> list[str]:
    """Two tiny timm candidates with weights saved here (96- and 256-dim features); never the network."""
    import timm
    from safetensors.torch import save_file

    specs = []
    for arch in ("test_resnet", "test_efficientnet"):
        torch.manual_seed(0)
        path = tmp_path / f"{arch}.safetensors"
        save_file(timm.create_model(arch, pretrained=False).state_dict(), str(path))
        specs.append(f"timm:{arch}@{path}")
    return specs


def test_parse_models_reads_commas_and_files(tmp_path):
    listing = tmp_path / "models.txt"
    listing.write_text("timm:a\n\n# a comment\ntimm:b  # trailing\ntimm:a\n")
    assert parse_models("timm:x, timm:y") == ["timm:x", "timm:y"]
    assert parse_models(f"@{listing},timm:c") == ["timm:a", "timm:b", "timm:c"]
    with pytest.raises(AnalyzerError, match="one model spec per line"):
        parse_models(f"@{tmp_path / 'missing.txt'}")
    with pytest.raises(AnalyzerError, match="--models"):
        parse_models(" , ")


def test_extract_then_cache_ls_du_rm(tmp_path, cache_dir, models, capsys):
    data = make_image_folder(tmp_path / "imgs", per_class=4)
    listing = tmp_path / "models.txt"
    listing.write_text("\n".join(models) + "\n")
    argv = [
        "extract",
        "--data",
        str(data),
        "--models",
        f"@{listing}",
        "--batch-size",
        "5",
        "--image-size",
        "32",
        "--no-progress",
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.count("extracted") == 2 and "12x96" in out and "12x256" in out
    assert main(argv) == 0
    assert capsys.readouterr().out.count("cached") == 2  # second run: both from the store (env cache dir)

    store = FeatureStore(cache_dir)
    keys = store.keys()
    assert len(keys) == 2
    assert main(["cache", "ls"]) == 0
    out = capsys.readouterr().out
    assert "test_efficientnet.safetensors" in out and "2 entries" in out and keys[0][:12] in out
    (cache_dir / "runs" / "r1").mkdir(parents=True)
    (cache_dir / "runs" / "r1" / "report.json").write_text("x" * 2048)
    assert main(["cache", "du"]) == 0
    out = capsys.readouterr().out
    assert "total" in out and "runs" in out and "2.0 KiB" in out and "whole cache" in out
    assert main(["cache", "rm", "timm:test_resnet@*"]) == 0
    assert len(store.keys()) == 1 and "test_resnet" not in str(store.ls()[0]["spec"])
    assert main(["cache", "rm", "nosuchkey"]) == 2
    assert "cache ls" in capsys.readouterr().err
    assert main(["cache", "rm", "--all"]) == 0 and store.keys() == []


def test_cache_dir_flag_wins_over_the_environment(tmp_path, cache_dir, models, capsys):
    data = make_image_folder(tmp_path / "imgs", per_class=2)
    other = tmp_path / "elsewhere"
    argv = [
        "extract",
        "--data",
        str(data),
        "--models",
        models[0],
        "--cache-dir",
        str(other),
        "--image-size",
        "32",
        "--no-progress",
    ]
    assert main(argv) == 0
    assert len(FeatureStore(other).keys()) == 1 and FeatureStore(cache_dir).keys() == []
    capsys.readouterr()
    assert main(["cache", "ls", "--cache-dir", str(other)]) == 0
    assert "1 entries" in capsys.readouterr().out


def test_extract_with_max_per_class_and_preprocessing_overrides_makes_new_entries(
    tmp_path, cache_dir, models
):
    data = make_image_folder(tmp_path / "imgs", per_class=4)
    base = ["extract", "--data", str(data), "--models", models[0], "--image-size", "32", "--no-progress"]
    assert main(base) == 0
    assert main([*base, "--max-per-class", "2", "--seed", "1"]) == 0
    assert main([*base, "--mean", "0.4,0.4,0.4", "--std", "0.2,0.2,0.2"]) == 0
    rows = FeatureStore(cache_dir).ls()
    assert sorted(r["n_samples"] for r in rows) == [6, 12, 12]


def test_extract_reports_a_bad_model_and_a_corrupt_image(tmp_path, cache_dir, models, capsys):
    data = make_image_folder(tmp_path / "imgs", per_class=3)
    argv = [
        "extract",
        "--data",
        str(data),
        "--models",
        f"{models[0]},timm:test_resnet@{tmp_path / 'gone.safetensors'}",
        "--image-size",
        "32",
        "--no-progress",
    ]
    assert main(argv) == 3  # done, with a failed candidate
    captured = capsys.readouterr()
    assert "failed" in captured.out and "FAILED timm:test_resnet@" in captured.err
    assert len(FeatureStore(cache_dir).keys()) == 1  # the good candidate was kept

    (data / "dog" / "01.png").write_bytes(b"garbage")
    argv = ["extract", "--data", str(data), "--models", models[0], "--image-size", "32", "--no-progress"]
    assert main(argv) == 2
    assert "dog/01.png" in capsys.readouterr().err
    assert main([*argv, "--skip-bad"]) == 0
    assert "dog/01.png" in capsys.readouterr().err  # recorded as skipped
    assert sorted(r["n_samples"] for r in FeatureStore(cache_dir).ls()) == [8, 9]


def test_cache_without_action_or_rm_without_target_is_a_usage_error(cache_dir, capsys):
    assert main(["cache"]) == 2
    assert main(["cache", "rm"]) == 2
    assert "--all" in capsys.readouterr().err


@pytest.mark.shared
def test_extract_cli_on_a_real_torchscript_candidate(cache_dir, capsys):
    root = require_shared(BENCHMARKS / "notmnist")
    spec = f"torchscript:{root / 'models' / 'cifar10_tutorialnet.pt'}"
    argv = ["extract", "--data", str(root / "target_images"), "--models", spec, "--max-per-class", "5"]
    assert main([*argv, "--no-progress"]) == 0
    assert "50x84" in capsys.readouterr().out
