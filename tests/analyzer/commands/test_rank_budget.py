"""``rank`` with a cost budget on the seven shipped notMNIST nets: ``--max-params 300000`` recommends the best
candidate with at most 300 000 parameters, the Pareto front is exactly the non-dominated set, the CLI prints the
budget and the pick, and a second run measures no cost (every one read from the cache)."""

from __future__ import annotations

import json

import pytest

from analyzer.budget import Budget, pareto_front
from analyzer.cli import main
from analyzer.commands.demo import DEMO_DATA, demo_specs
from analyzer.config import load_config_file, resolve_config
from analyzer.errors import ConfigError
from analyzer.request import RankRequest

FAST = ["--metrics", "logme,knn", "--n-bootstrap", "0", "--max-per-class", "5", "--device", "cpu", "--quiet"]


@pytest.mark.slow
def test_max_params_recommends_the_best_candidate_within_it_and_a_second_run_measures_nothing(
    tmp_path, capsys
):
    args = [
        "rank",
        "--data",
        str(DEMO_DATA),
        "--models",
        ",".join(demo_specs()),
        "--cache-dir",
        str(tmp_path),
    ]
    assert main([*args, "--out", str(tmp_path / "one"), "--max-params", "300000", *FAST]) == 0
    out = capsys.readouterr().out
    report = json.loads((tmp_path / "one" / "report.json").read_text())
    rows = report["ranking"]
    fits = [r for r in rows if r["cost"]["params"] <= 300_000]
    assert fits and all(r["within_budget"] == (r["cost"]["params"] <= 300_000) for r in rows)
    best = min(fits, key=lambda r: r["aggregate_score"])
    tied = [r["model"] for r in fits if r["aggregate_score"] == best["aggregate_score"]]
    assert report["recommendation"]["model"] in tied
    assert report["budget"]["max_params"] == 300_000
    assert "Budget: params <= 300k." in out and "Pick: " in out
    points = [(r["model"], r["aggregate_score"]) for r in rows]
    costs = {r["model"]: r["cost"] for r in rows}
    assert report["pareto"]["axis"] == "latency_ms"
    assert sorted(report["pareto"]["models"]) == sorted(pareto_front(points, costs, "latency_ms"))
    records = sorted(p.name for p in (tmp_path / "cost").glob("*.json"))
    assert len(records) == 7

    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "cost").glob("*.json")}
    assert main([*args, "--out", str(tmp_path / "two"), "--pareto-axis", "flops", *FAST]) == 0
    second = json.loads((tmp_path / "two" / "report.json").read_text())
    assert {
        p.name: p.stat().st_mtime_ns for p in (tmp_path / "cost").glob("*.json")
    } == before  # none rewritten
    assert {r["model"]: r["cost"] for r in second["ranking"]} == costs  # every cost read from the cache
    assert second["pareto"]["axis"] == "flops" and second["budget"]["max_params"] is None


def test_budget_keys_in_the_config_file_and_flags_override_them(tmp_path):
    path = tmp_path / "study.toml"
    path.write_text(
        'max_params = 300000\nmax_latency_ms = 2.5\npareto_axis = "params"\ndata = "x"\nmodels = ["a"]\n'
    )
    config = resolve_config(load_config_file(str(path)), {"max_latency_ms": 4.0})
    assert config.budget() == Budget(max_params=300_000, max_latency_ms=4.0)
    assert config.pareto_axis == "params" and config.to_dict()["max_params"] == 300_000


@pytest.mark.parametrize(
    ("values", "problem"),
    [
        ({"max_params": -1}, "--max-params must be a positive number"),
        ({"max_memory_mb": 0}, "--max-memory-mb must be a positive number"),
        ({"max_flops": "many"}, "max_flops"),
        ({"pareto_axis": "weights"}, "unknown Pareto axis 'weights'"),
    ],
)
def test_a_bad_budget_is_a_config_error_naming_the_key(values, problem):
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(")):
        RankRequest(data="x", models=("a",), **values)


def test_bad_budget_flags_exit_2_with_the_fix(tmp_path, capsys):
    code = main(
        ["rank", "--data", "x", "--models", "a", "--cache-dir", str(tmp_path), "--max-latency-ms", "-3"]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert "--max-latency-ms must be a positive number" in err and "fix:" in err
