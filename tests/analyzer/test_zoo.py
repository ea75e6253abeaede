"""The offline candidate pool: synthetic source tasks, tiny deterministic builds, loading through sources."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from analyzer import zoo, zoo_tasks
from analyzer.errors import AnalyzerError

TINY = zoo.Budget("tiny", steps=3, batch_size=16, n_train=48, n_test=32, threads=1)
RESNET = zoo.CandidateConfig("resnet-strokes", "resnet", "strokes")
INIT = zoo.CandidateConfig("resnet-init", "resnet", None)


@pytest.mark.parametrize("task", sorted(zoo.SOURCE_TASKS))
def test_source_task_generates_uint8_images_with_labels_in_range(task: str) -> None:
    images, labels = zoo.SOURCE_TASKS[task](40, 0)
    assert images.shape == (40, zoo.IMAGE_SIZE, zoo.IMAGE_SIZE, 3) and images.dtype == np.uint8
    assert labels.shape == (40,) and labels.min() >= 0 and labels.max() < zoo.SOURCE_CLASSES[task]
    # Not blank: every image has a visible foreground against its background.
    assert (images.reshape(40, -1).std(axis=1) > 5).all()


@pytest.mark.parametrize("task", sorted(zoo.SOURCE_TASKS))
def test_source_task_is_reproducible_and_seed_dependent(task: str) -> None:
    a, la = zoo.SOURCE_TASKS[task](16, 3)
    b, lb = zoo.SOURCE_TASKS[task](16, 3)
    c, _ = zoo.SOURCE_TASKS[task](16, 4)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_random_label_control_shares_images_with_strokes_but_not_labels() -> None:
    strokes, stroke_labels = zoo_tasks.make_strokes(200, 0)
    images, labels = zoo_tasks.make_random_labels(200, 0)
    assert np.array_equal(strokes, images)
    assert np.mean(labels == stroke_labels) < 0.3  # ~10 % agreement expected by chance


def test_pool_has_several_families_tasks_and_baselines() -> None:
    families = {c.family for c in zoo.FULL_POOL}
    tasks = {c.task for c in zoo.FULL_POOL}
    assert 6 <= len(zoo.FULL_POOL) <= 12
    assert len(families) >= 3
    assert {"strokes", "fractals", "shapes", "textures", "random_labels", None} <= tasks
    assert len({c.name for c in zoo.FULL_POOL}) == len(zoo.FULL_POOL)


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_tiny_build_writes_weights_and_sidecar(tmp_path: Path) -> None:
    built = zoo.build_zoo(tmp_path, budget=TINY, candidates=[RESNET, INIT], progress=False)
    assert [b.name for b in built] == ["resnet-strokes", "resnet-init"]
    for candidate in built:
        assert candidate.weights_path == tmp_path / "zoo" / f"{candidate.name}.safetensors"
        assert candidate.weights_path.is_file()
        sidecar = json.loads(candidate.weights_path.with_suffix(".json").read_text())
        for key in (
            "model_kwargs",
            "input_size",
            "mean",
            "std",
            "interpolation",
            "crop_pct",
            "source_task",
            "source_accuracy",
            "seed",
            "budget",
            "train_seconds",
        ):
            assert key in sidecar, key
        assert sidecar["weights_sha256"] == _sha(candidate.weights_path)
        assert candidate.spec == f"timm:resnet18@{candidate.weights_path}"
    trained, init = (b.sidecar for b in built)
    assert 0.0 <= trained["source_accuracy"] <= 1.0 and trained["budget"]["steps"] == 3
    assert init["source_accuracy"] is None and init["budget"]["steps"] == 0
    assert [b.spec for b in zoo.list_zoo(tmp_path)] == sorted(b.spec for b in built)


def test_same_seed_gives_identical_weights_and_other_seed_differs(tmp_path: Path) -> None:
    first = zoo.build_zoo(tmp_path / "a", budget=TINY, candidates=[RESNET], progress=False)[0]
    second = zoo.build_zoo(tmp_path / "b", budget=TINY, candidates=[RESNET], progress=False)[0]
    other = zoo.CandidateConfig("resnet-strokes", "resnet", "strokes", seed=1)
    third = zoo.build_zoo(tmp_path / "c", budget=TINY, candidates=[other], progress=False)[0]
    assert _sha(first.weights_path) == _sha(second.weights_path)
    assert _sha(first.weights_path) != _sha(third.weights_path)


def test_rebuild_is_cached_until_the_config_changes(tmp_path: Path) -> None:
    zoo.build_zoo(tmp_path, budget=TINY, candidates=[RESNET], progress=False)
    again = zoo.build_zoo(tmp_path, budget=TINY, candidates=[RESNET], progress=False)
    assert again[0].cached
    longer = zoo.Budget("tiny", steps=4, batch_size=16, n_train=48, n_test=32, threads=1)
    rebuilt = zoo.build_zoo(tmp_path, budget=longer, candidates=[RESNET], progress=False)
    assert not rebuilt[0].cached and rebuilt[0].sidecar["budget"]["steps"] == 4


def test_built_candidate_loads_through_sources_with_its_preprocessing(tmp_path: Path) -> None:
    import torch

    from analyzer.sources import load_backbone

    built = zoo.build_zoo(tmp_path, budget=TINY, candidates=[RESNET], progress=False)[0]
    backbone = load_backbone(built.spec)
    assert tuple(backbone.preprocess.input_size) == (3, 32, 32)
    assert np.allclose(backbone.preprocess.mean, built.sidecar["mean"])
    assert backbone.source_accuracy == pytest.approx(built.sidecar["source_accuracy"])
    with torch.no_grad():
        features = backbone.module(torch.zeros(2, 3, 32, 32))
        logits = backbone.classify(torch.zeros(2, 3, 32, 32))
    assert features.shape == (2, 128) and logits.shape == (2, 10)


def test_unknown_names_raise_errors_that_name_the_choices(tmp_path: Path) -> None:
    with pytest.raises(AnalyzerError, match="small, full"):
        zoo.build_zoo(tmp_path, budget="huge", progress=False)
    with pytest.raises(AnalyzerError, match="resnet-strokes"):
        zoo.build_zoo(tmp_path, budget=TINY, candidates=[RESNET], only=["nope"], progress=False)


def test_zoo_cli_builds_and_lists_specs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    from analyzer.cli import main

    monkeypatch.setattr(zoo, "BUDGETS", {**zoo.BUDGETS, "small": TINY})
    assert (
        main(
            [
                "zoo",
                "build",
                "--budget",
                "small",
                "--only",
                "resnet-init",
                "--cache-dir",
                str(tmp_path),
                "--quiet",
            ]
        )
        == 0
    )
    assert "resnet-init" in capsys.readouterr().out
    assert main(["zoo", "ls", "--cache-dir", str(tmp_path)]) == 0
    assert capsys.readouterr().out.strip() == f"timm:resnet18@{tmp_path / 'zoo' / 'resnet-init.safetensors'}"
