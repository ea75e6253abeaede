"""The fine-tuning regime: ``probe --regime finetune`` end to end on a tiny TorchScript net, its determinism, the
refusal of untrainable sources, and the record cache."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import pytest

from analyzer import finetune
from analyzer.errors import EXIT_USAGE, ConfigError
from analyzer.finetune import FinetuneProtocol, finetune_runs

#: One split, one rate, one epoch: the procedure in full, in a fraction of a second.
TINY = FinetuneProtocol(splits=2, learning_rates=(0.05, 0.01), max_epochs=1, patience=1, batch_size=4)


@pytest.fixture
def tiny_world(tmp_path: Path) -> tuple[str, str]:
    """A 2-class image folder (8 images per class) and a tiny TorchScript conv net: (data path, model spec)."""
    from tests.fixtures.make_run import make_image_folder, make_torchscript_model

    data = make_image_folder(tmp_path / "data", classes=2, per_class=8)
    return str(data), make_torchscript_model(tmp_path / "m.pt", seed=0)


def test_finetune_trains_the_whole_torchscript_backbone_and_leaves_the_caller_s_module_as_loaded(
    tiny_world: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import torch

    from analyzer.datasets import open_dataset
    from analyzer.sources import load_backbone

    data, spec = tiny_world
    backbone = load_backbone(spec)
    assert isinstance(backbone.module.model, torch.jit.ScriptModule)  # the TorchScript path
    before = [p.detach().clone() for p in backbone.module.parameters()]
    seen: list[list[bool]] = []  # per optimiser: requires_grad of each parameter it was given, at that moment
    real_sgd = torch.optim.SGD

    def recording_sgd(params, *args, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202 - a spy on the optimiser
        params = list(params)
        seen.append([p.requires_grad for p in params])
        return real_sgd(params, *args, **kwargs)

    monkeypatch.setattr(torch.optim, "SGD", recording_sgd)
    result = finetune_runs(open_dataset(data), backbone, protocol=TINY, progress=False)
    assert 0.0 <= result.accuracy <= 1.0 and result.sem >= 0.0
    assert len(result.per_split) == 2 and set(result.learning_rates) <= set(TINY.learning_rates)
    # split 0 tries every rate, later splits reuse the chosen one: 2 + 1 runs
    assert len(seen) == 3
    n_backbone = len(before)
    assert len(seen[0]) == n_backbone + 2 and all(seen[0]), (
        "the backbone's parameters (and the head's) must train"
    )
    for old, new in zip(before, backbone.module.parameters(), strict=True):
        assert torch.equal(old, new) and not new.requires_grad
    assert not backbone.module.training


def test_finetune_gives_the_same_numbers_twice(tiny_world: tuple[str, str]) -> None:
    from analyzer.datasets import open_dataset
    from analyzer.sources import load_backbone

    data, spec = tiny_world
    first = finetune_runs(open_dataset(data), load_backbone(spec), protocol=TINY, progress=False)
    second = finetune_runs(open_dataset(data), load_backbone(spec), protocol=TINY, progress=False)
    assert first.train_seconds > 0  # the only field that may differ: wall time
    assert dataclasses.replace(first, train_seconds=0.0) == dataclasses.replace(second, train_seconds=0.0)


def test_splits_are_stratified_disjoint_and_cover_every_sample() -> None:
    import numpy as np

    labels = np.repeat(np.arange(4), 10)
    parts = finetune.split_indices(labels, 0, seed=0)
    joined = np.concatenate(list(parts.values()))
    assert sorted(joined.tolist()) == list(range(40))
    assert all(len(np.unique(labels[idx])) == 4 for idx in parts.values())
    assert not np.array_equal(parts["test"], finetune.split_indices(labels, 1, seed=0)["test"])


def _probe_argv(data: str, spec: str, out: Path, cache: Path, *extra: str) -> list[str]:
    return [
        "probe",
        "--data",
        data,
        "--models",
        spec,
        "--out",
        str(out),
        "--cache-dir",
        str(cache),
        "--quiet",
        *extra,
    ]


def test_probe_command_finetune_regime_writes_truth_with_regime_and_sem_and_caches_each_run(
    tiny_world: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from analyzer.cli import main
    from analyzer.probe import read_truth_csv

    monkeypatch.setattr(finetune, "PROTOCOL", TINY)
    data, spec = tiny_world
    out = tmp_path / "truth.csv"
    argv = _probe_argv(data, spec, out, tmp_path / "cache", "--regime", "finetune", "--max-per-class", "6")
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "finetune acc" in printed and "protocol: full fine-tune" in printed
    rows = list(csv.DictReader(out.open()))
    assert [r["model"] for r in rows] == [spec] and rows[0]["regime"] == "finetune"
    assert 0.0 <= float(rows[0]["accuracy"]) <= 1.0 and float(rows[0]["sem"]) >= 0.0
    runs = sorted((tmp_path / "cache" / "probe").glob("*-ft*.json"))
    assert len(runs) == 3  # (split 0: two rates) + (split 1: the chosen rate), one record each
    stamps = [p.stat().st_mtime_ns for p in runs]
    out.unlink()
    assert main(argv) == 0  # a repeat reads every run back
    assert [p.stat().st_mtime_ns for p in runs] == stamps
    assert read_truth_csv(out, regime="finetune") == {spec: float(rows[0]["accuracy"])}


def test_probe_command_refuses_a_source_that_cannot_be_trained_before_any_work(
    tiny_world: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from analyzer.cli import main

    data, _ = tiny_world
    argv = _probe_argv(
        data, "export:/nowhere/model.pt2", tmp_path / "t.csv", tmp_path / "cache", "--regime", "finetune"
    )
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert "cannot be fine-tuned" in err and "--regime linear" in err
    assert not (tmp_path / "cache" / "features").exists()


def test_a_module_without_parameters_is_refused(tmp_path: Path) -> None:
    import torch

    from analyzer.sources import load_backbone

    class Pool(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x.mean(dim=(2, 3))

    path = tmp_path / "pool.pt"
    torch.jit.script(Pool()).save(str(path))
    path.with_suffix(".json").write_text(
        '{"input_size": [3, 16, 16], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}'
    )
    with pytest.raises(ConfigError, match="no floating-point parameters"):
        finetune.check_trainable(load_backbone(f"torchscript:{path}"))
