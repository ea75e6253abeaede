"""Ground truth in two regimes: the ``regime`` column of a truth CSV, ``evaluate --regime``, and the shipped
``assets/notmnist/truth.csv`` (both regimes for all seven demo nets)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from analyzer.cli import main
from analyzer.commands.demo import ASSETS, DEMO_MODELS, SHIPPED_TRUTH, shipped_finetune_truth
from analyzer.errors import TruthError
from analyzer.truth import load_ground_truth
from tests.fixtures.make_run import make_run


def _two_regimes(path: Path, models: list[str]) -> Path:
    rows = [f"{m},linear,{0.9 - 0.05 * i},0.01" for i, m in enumerate(models)]
    rows += [f"{m},finetune,{0.5 + 0.05 * i},0.02" for i, m in enumerate(models)]
    path.write_text("model,regime,accuracy,sem\n" + "\n".join(rows) + "\n")
    return path


def test_a_regime_column_is_filtered_and_a_file_mixing_regimes_needs_one_named(tmp_path: Path) -> None:
    path = _two_regimes(tmp_path / "t.csv", ["a", "b"])
    assert load_ground_truth(path, regime="linear") == pytest.approx({"a": 0.9, "b": 0.85})
    assert load_ground_truth(path, regime="finetune") == pytest.approx({"a": 0.5, "b": 0.55})
    with pytest.raises(TruthError, match="mixes regimes") as raised:
        load_ground_truth(path)
    assert "--regime" in raised.value.fix
    one = tmp_path / "one.csv"
    one.write_text("model,regime,accuracy,sem\na,finetune,0.5,\nb,finetune,0.6,\n")
    assert load_ground_truth(one) == {"a": 0.5, "b": 0.6}  # one regime: no need to name it
    with pytest.raises(TruthError, match="no rows of regime 'linear'"):
        load_ground_truth(one, regime="linear")
    plain = tmp_path / "plain.csv"
    plain.write_text("model,accuracy\na,0.5\nb,0.6\n")
    with pytest.raises(TruthError, match="no `regime` column"):
        load_ground_truth(plain, regime="finetune")


def test_evaluate_reads_the_regime_asked_and_refuses_a_mixed_file_without_one(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = make_run(tmp_path / "run", with_validation=False, save=True)
    truth = _two_regimes(tmp_path / "truth.csv", list(result.models))
    base = ["evaluate", "--report", str(tmp_path / "run"), "--ground-truth", str(truth), "--no-write"]
    assert main(base) == 2
    err = capsys.readouterr().err
    assert "mixes regimes (finetune, linear)" in err and "--regime" in err
    assert main([*base, "--regime", "finetune"]) == 0
    assert "regime finetune" in capsys.readouterr().out


def test_the_shipped_truth_covers_the_seven_demo_nets_in_both_regimes() -> None:
    rows = list(csv.DictReader(SHIPPED_TRUTH.open(encoding="utf-8")))
    assert list(rows[0]) == ["model", "regime", "accuracy", "sem"]
    pairs = {(r["model"], r["regime"]) for r in rows}
    assert pairs == {(m, regime) for m in DEMO_MODELS for regime in ("linear", "finetune")}
    assert len(rows) == len(pairs)
    for row in rows:
        accuracy, sem = float(row["accuracy"]), float(row["sem"])
        assert 0.1 <= accuracy <= 1.0 and 0.0 <= sem < 0.1 and math.isfinite(sem)
    specs = [f"torchscript:{ASSETS / 'models' / m}.pt" for m in DEMO_MODELS]
    assert sorted(shipped_finetune_truth(specs)) == sorted(specs)
