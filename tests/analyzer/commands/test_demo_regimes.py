"""The demo validates against both ground truths: the linear probe (measured) and the fine-tuned accuracy (read from
the shipped ``assets/notmnist/truth.csv``); its two tables, and the run directory's truth file with both regimes."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from analyzer.commands import demo
from analyzer.validation import validation_block
from tests.fixtures.make_run import make_run


def _fake_run(tmp_path: Path, *, with_finetune: bool) -> demo.DemoRun:
    result = make_run(tmp_path / "run", with_validation=True, with_failure=False, save=True)
    assert result.validation is not None
    truth = dict(result.validation.truth)
    run = demo.DemoRun(tmp_path / "run", result, truth, {m: m for m in result.models}, 1.0)
    if with_finetune:
        # the fine-tuned order is the probe's reversed: the two tables must differ
        run.finetune_truth = {m: 1.0 - a for m, a in truth.items()}
        run.finetune_validation = validation_block(result, run.finetune_truth)
    return run


def _print_demo(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *,
    with_finetune: bool,
) -> str:
    fake = _fake_run(tmp_path, with_finetune=with_finetune)
    monkeypatch.setattr(demo, "run_demo", lambda *args, **kwargs: fake)
    args = argparse.Namespace(
        cache_dir=None, zoo=False, budget="full", max_per_class=None, folds=5, bootstrap=3, quiet=True
    )
    assert demo.run(args) == 0
    return capsys.readouterr().out


def test_the_demo_prints_one_validation_table_per_regime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _print_demo(tmp_path, monkeypatch, capsys, with_finetune=True)
    linear = out.index("Validation against the linear-probe accuracy")
    finetuned = out.index("Validation against the fine-tuned accuracy")
    assert linear < finetuned and "assets/notmnist/truth.csv" in out[finetuned:]
    first = out[linear:finetuned].splitlines()[1:4]
    second = out[finetuned:].splitlines()[1:4]
    assert first[0] == second[0] and first[0].split()[:2] == ["metric", "weighted_tau"]
    assert first[1].split()[0] == second[1].split()[0] == "aggregate"
    assert first[1] != second[1]  # reversed truth: another weighted tau


def test_without_a_fine_tuned_truth_the_demo_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    out = _print_demo(tmp_path, monkeypatch, capsys, with_finetune=False)
    assert "Validation against the linear-probe accuracy" in out
    assert "Validation against the fine-tuned accuracy: not shown" in out


def test_shipped_fine_tuned_truth_is_matched_to_the_specs_by_file_name(tmp_path: Path) -> None:
    path = tmp_path / "truth.csv"
    path.write_text(
        "model,regime,accuracy,sem\nnet_a,linear,0.5,0.01\nnet_a,finetune,0.9,0.02\nnet_b,finetune,0.8,\n"
    )
    specs = [
        f"torchscript:{tmp_path}/net_a.pt",
        f"torchscript:{tmp_path}/net_b.pt",
        "torchscript:/x/other.pt",
    ]
    assert demo.shipped_finetune_truth(specs, path) == {specs[0]: 0.9, specs[1]: 0.8}
    assert demo.shipped_finetune_truth(specs, tmp_path / "absent.csv") == {}
