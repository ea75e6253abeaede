"""A reduced ``demo --zoo`` (three tiny zoo candidates, a few digits per class) runs the whole path end to end."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys

import pytest

from analyzer import zoo
from analyzer.commands import demo
from tests.conftest import PROJECT_ROOT

TINY = zoo.Budget("tiny", steps=3, batch_size=16, n_train=48, n_test=32, threads=1)
POOL = [
    zoo.CandidateConfig("resnet-strokes", "resnet", "strokes"),
    zoo.CandidateConfig("resnet-init", "resnet", None),
    zoo.CandidateConfig("vit-init", "vit", None),
]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> demo.DemoRun:
    cache = tmp_path_factory.mktemp("demo-cache")
    return demo.run_demo(
        cache,
        zoo=True,
        budget=TINY,
        candidates=POOL,
        max_per_class=8,
        folds=3,
        n_bootstrap=3,
        progress=False,
        echo=lambda _: None,
    )


def test_reduced_demo_writes_every_report_and_the_truth(demo_run: demo.DemoRun) -> None:
    for name in ("report.json", "ranking.csv", "report.md", "report.html", "truth.csv"):
        assert (demo_run.run_dir / name).is_file(), name
    assert demo_run.run_dir.parent.name == "runs"
    report = json.loads((demo_run.run_dir / "report.json").read_text())
    assert report["schema_version"] == 1 and report["dataset"]["spec"] == demo.ZOO_DATA
    assert report["dataset"]["n_samples"] == 80 and report["dataset"]["n_classes"] == 10
    assert sorted(r["model"] for r in report["ranking"]) == sorted(demo_run.names)
    assert [r["rank"] for r in report["ranking"]][0] == 1
    names = {m["name"] for m in report["metrics"]}
    assert {"logme", "alpha"} <= names
    with (demo_run.run_dir / "truth.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert {r["model"] for r in rows} == set(demo_run.names)


def test_reduced_demo_validates_the_ranking_against_the_probe(demo_run: demo.DemoRun) -> None:
    validation = json.loads((demo_run.run_dir / "report.json").read_text())["validation"]
    assert set(validation["truth"]) == set(demo_run.names)
    assert all(0.0 <= a <= 1.0 for a in validation["truth"].values())
    by_metric = {row["metric"]: row for row in validation["rows"]}
    assert "logme" in by_metric and len(by_metric) >= 3
    for row in by_metric.values():
        if row["weighted_tau"] is not None:
            assert -1.0 <= row["weighted_tau"] <= 1.0
        if row["top1_regret"] is not None:
            assert 0.0 <= row["top1_regret"] <= 1.0
    assert any(row["weighted_tau"] is not None for row in by_metric.values())


def test_demo_tables_and_dashboard_line(demo_run: demo.DemoRun) -> None:
    ranking = demo.ranking_lines(demo_run)
    assert len(ranking) == 1 + len(POOL) and "probe" in ranking[0]
    assert any("resnet-strokes" in line for line in ranking[1:])
    validation = demo.validation_lines(demo_run)
    assert "weighted_tau" in validation[0] and any(line.startswith("logme") for line in validation)
    line = demo.dashboard_command(demo_run)
    assert line.endswith(".venv/bin/streamlit run app.py")
    assert str(demo_run.run_dir.parent.parent) in line


def test_second_demo_run_reuses_the_zoo(demo_run: demo.DemoRun) -> None:
    cache = demo_run.run_dir.parent.parent
    again = zoo.build_zoo(cache, budget=TINY, candidates=POOL, progress=False)
    assert all(b.cached for b in again)


def test_demo_cli_second_run_is_cached_and_ends_with_the_dashboard_line(
    demo_run: demo.DemoRun, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from analyzer.cli import main

    # The same zoo, data and options as the fixture's run: everything (zoo, features, scores, spectra) is cached.
    monkeypatch.setattr(zoo, "BUDGETS", {**zoo.BUDGETS, "small": TINY})
    monkeypatch.setattr(zoo, "POOLS", {**zoo.POOLS, "small": tuple(POOL)})
    cache = demo_run.run_dir.parent.parent
    argv = [
        "demo",
        "--zoo",
        "--budget",
        "small",
        "--max-per-class",
        "8",
        "--folds",
        "3",
        "--bootstrap",
        "3",
        "--quiet",
        "--cache-dir",
        str(cache),
    ]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "best first" in out and "Validation against the linear-probe accuracy" in out
    assert (
        "Validation against the fine-tuned accuracy: not shown (the zoo has no shipped fine-tuned truth"
        in out
    )
    assert out.rstrip().splitlines()[-1].strip().endswith(".venv/bin/streamlit run app.py")
    runs = sorted(p for p in (cache / "runs").iterdir() if p.is_dir())
    assert len(runs) >= 1 and all((p / "report.json").is_file() for p in runs)


def test_torch_first_imported_inside_limited_threads_runs_on_the_limit() -> None:
    # A cached run never imports torch, so the limit cannot be set on it up front: torch (and every OpenMP/BLAS
    # library) loaded inside the block must read it as it loads, and the environment must be restored after.
    script = (
        "import os, sys\n"
        "from analyzer.commands.demo import THREAD_ENV, limited_threads\n"
        "assert 'torch' not in sys.modules\n"
        "before = {k: os.environ.get(k) for k in THREAD_ENV}\n"
        "with limited_threads(1):\n"
        "    import torch\n"
        "    inside = torch.get_num_threads()\n"
        "assert {k: os.environ.get(k) for k in THREAD_ENV} == before\n"
        "with limited_threads(1):\n"
        "    again = torch.get_num_threads()\n"
        "print(inside, again)\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in demo.THREAD_ENV}
    out = subprocess.run(
        [sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True, env=env
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["1", "1"]
