"""``python -m analyzer rank`` and ``evaluate`` end to end: reports, config files, exit codes, failure paths."""

from __future__ import annotations

import json

import pytest

from analyzer.cli import main
from analyzer.ranking import DEFAULT_AGGREGATE
from analyzer.result import RankingResult
from tests.conftest import BENCHMARKS, require_shared
from tests.fixtures.make_run import make_image_folder, make_run, make_torchscript_model

FAST = ["--metrics", "logme,knn", "--n-bootstrap", "5", "--quiet"]


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli_pool")
    data = make_image_folder(root / "images", classes=3, per_class=8)
    specs = [make_torchscript_model(root / f"m{i}.pt", seed=i, width=6 + 2 * i) for i in range(3)]
    return data, specs


def test_rank_writes_all_reports_and_prints_the_table(pool, tmp_path, capsys):
    data, specs = pool
    truth = tmp_path / "truth.csv"
    truth.write_text("model,accuracy\n" + "".join(f"{s},{0.5 + 0.1 * i}\n" for i, s in enumerate(specs)))
    out = tmp_path / "run"
    code = main(
        [
            "rank",
            "--data",
            str(data),
            "--models",
            ",".join(specs),
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--ground-truth",
            str(truth),
            *FAST,
        ]
    )
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        ".analyzer-written.json",  # what the analyzer wrote there (analyzer.outputs)
        "ranking.csv",
        "report.html",
        "report.json",
        "report.md",
    ]
    printed = capsys.readouterr().out
    assert "mean rank" in printed and "weighted τ" in printed and "resamples" in printed
    result = RankingResult.load(out)
    assert sorted(result.models) == sorted(specs)
    assert result.config["metrics"] == ["logme", "knn"] and result.config["n_bootstrap"] == 5
    assert result.validation.truth == pytest.approx({s: 0.5 + 0.1 * i for i, s in enumerate(specs)})
    assert result.environment["versions"]["numpy"] and result.timings["total_seconds"] > 0


def test_without_out_a_run_goes_under_cache_runs(pool, cache_dir):
    data, specs = pool
    assert (
        main(["rank", "--data", str(data), "--models", ",".join(specs[:2]), "--name", "my study", *FAST]) == 0
    )
    runs = list((cache_dir / "runs").iterdir())
    assert len(runs) == 1 and runs[0].name.endswith("-my-study")
    assert (runs[0] / "report.json").is_file()


def test_config_file_is_equivalent_to_flags_and_flags_override_it(pool, tmp_path):
    data, specs = pool
    config = tmp_path / "study.toml"
    config.write_text(
        f'data = "{data}"\nmodels = {json.dumps(specs[:2])}\nmetrics = ["logme", "knn"]\n'
        "n-bootstrap = 5\nseed = 3\n[metric_params.knn]\nk = 3\n"
    )
    common = ["--cache-dir", str(tmp_path / "cache"), "--quiet"]
    assert main(["rank", "--config", str(config), "--out", str(tmp_path / "a"), *common]) == 0
    assert main(["rank", "--config", str(config), "--out", str(tmp_path / "b"), "--seed", "4", *common]) == 0
    a, b = RankingResult.load(tmp_path / "a"), RankingResult.load(tmp_path / "b")
    assert a.config["seed"] == 3 and b.config["seed"] == 4
    assert a.config["metric_params"] == {"knn": {"k": 3}} and a.metric("knn").params == {"k": 3}
    assert [r.scores for r in a.ranking] == [r.scores for r in b.ranking]  # the seed only moves the bootstrap


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--metrics", "logme,bogus"], "unknown metric(s) 'bogus'"),
        (["--models", "nosuchsource:model"], "no known source prefix"),
        (["--data", "/no/such/dir"], "/no/such/dir"),
        (["--ground-truth", "/no/truth.csv"], "does not exist"),
        (
            ["--n-bootstrap", "-1"],
            "--n-bootstrap -1 is out of range (0 = no bootstrap): it must be from 0 to 100 000",
        ),
    ],
)
def test_bad_arguments_exit_2_with_the_problem_and_the_fix(pool, tmp_path, capsys, args, message):
    data, specs = pool
    base = {"--data": str(data), "--models": specs[0], "--metrics": "logme"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["rank", *[x for kv in base.items() for x in kv], "--cache-dir", str(tmp_path), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "fix:" in err


def test_unknown_config_key_lists_the_valid_keys(tmp_path, capsys):
    config = tmp_path / "bad.toml"
    config.write_text('data = "x"\nmodles = ["a"]\n')
    assert main(["rank", "--config", str(config)]) == 2
    assert "unknown key 'modles'" in capsys.readouterr().err


def test_an_unknown_metric_parameter_in_the_config_names_the_valid_ones(pool, tmp_path, capsys):
    data, specs = pool
    config = tmp_path / "study.toml"
    config.write_text(
        f'data = "{data}"\nmodels = ["{specs[0]}"]\nmetrics = ["knn"]\n[metric_params.knn]\nkk = 3\n'
    )
    assert main(["rank", "--config", str(config), "--cache-dir", str(tmp_path), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "has no parameter 'kk'" in err and "valid parameters:" in err


def test_one_failing_candidate_is_reported_and_the_others_ranked(pool, tmp_path, capsys):
    data, specs = pool
    broken = f"torchscript:{tmp_path / 'gone.pt'}"
    argv = [
        "rank",
        "--data",
        str(data),
        "--models",
        ",".join([specs[0], broken, specs[1]]),
        "--out",
        str(tmp_path / "run"),
        "--cache-dir",
        str(tmp_path / "c"),
        *FAST,
    ]
    assert main(argv) == 3  # ranked, with a failed candidate
    assert f"FAILED {broken}" in capsys.readouterr().err
    result = RankingResult.load(tmp_path / "run")
    assert [f.model for f in result.failed] == [broken] and len(result.ranking) == 2


def test_an_internal_failure_exits_1(pool, tmp_path, monkeypatch, capsys):
    from analyzer import ranking

    def crash(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(ranking.Ranker, "run", crash)
    data, specs = pool
    argv = ["rank", "--data", str(data), "--models", specs[0], "--cache-dir", str(tmp_path), *FAST]
    assert main(argv) == 1
    assert "internal error" in capsys.readouterr().err


def test_evaluate_prints_statistics_and_adds_them_to_the_reports(tmp_path, capsys):
    result = make_run(tmp_path / "run", with_validation=False, save=True)
    assert "Validation against ground truth" not in (tmp_path / "run" / "report.md").read_text()
    truth = tmp_path / "truth.csv"
    truth.write_text(
        "model,accuracy\n" + "".join(f"{m},{0.9 - 0.05 * i}\n" for i, m in enumerate(result.models))
    )
    assert (
        main(["evaluate", "--report", str(tmp_path / "run" / "report.json"), "--ground-truth", str(truth)])
        == 0
    )
    printed = capsys.readouterr().out
    assert "weighted τ" in printed and "top-3 recall" in printed
    again = RankingResult.load(tmp_path / "run")
    aggregate = next(r for r in again.validation.rows if r.metric == "aggregate")
    assert aggregate.kendall_tau == pytest.approx(1.0)  # truth in the aggregate's own order
    assert aggregate.top1_regret == pytest.approx(0.0)
    assert "Validation against ground truth" in (tmp_path / "run" / "report.html").read_text()


def test_evaluate_with_truth_for_other_models_exits_2(tmp_path, capsys):
    make_run(tmp_path / "run", save=True)
    truth = tmp_path / "truth.csv"
    truth.write_text("model,accuracy\ntimm:a,0.5\ntimm:b,0.6\n")
    assert main(["evaluate", "--report", str(tmp_path / "run"), "--ground-truth", str(truth)]) == 2
    assert "same specs as the report" in capsys.readouterr().err


@pytest.mark.shared
@pytest.mark.slow
def test_rank_the_seven_real_notmnist_candidates_with_the_default_metrics(tmp_path, capsys):
    root = require_shared(BENCHMARKS / "notmnist")
    specs = [f"torchscript:{p}" for p in sorted((root / "models").glob("*.pt"))]
    argv = [
        "rank",
        "--data",
        str(root / "target_images"),
        "--models",
        ",".join(specs),
        "--max-per-class",
        "30",
        "--n-bootstrap",
        "10",
        "--out",
        str(tmp_path / "run"),
        "--cache-dir",
        str(tmp_path / "cache"),
        "--quiet",
    ]
    assert main(argv) == 0
    result = RankingResult.load(tmp_path / "run")
    assert len(result.ranking) == 7 and not result.failed and not result.skipped
    assert result.aggregate.metrics == list(DEFAULT_AGGREGATE)
    assert set(result.spectrum) == set(specs)
    # notMNIST glyphs are grey strokes on black, like MNIST digits: an MNIST LeNet is among the best two.
    assert any("mnist_lenet5" in m for m in result.models[:2])
    by_model = {r.model: r for r in result.ranking}
    assert by_model[specs[0]].num_params == 269_722  # cifar10_resnet20, from its json


def test_rank_stops_the_bootstrap_early_by_default_and_records_the_resamples_used_and_the_rule(
    pool, tmp_path
):
    data, specs = pool
    args = ["rank", "--data", str(data), "--models", ",".join(specs), "--n-bootstrap", "130"]
    flags = ["--cache-dir", str(tmp_path / "cache"), "--metrics", "logme,knn", "--quiet"]
    assert main([*args, *flags, "--out", str(tmp_path / "default")]) == 0
    block = RankingResult.load(tmp_path / "default").bootstrap.to_dict()
    assert block["n_requested"] == 130 and block["n_resamples"] in (60, 120, 130)
    assert (
        "Clopper-Pearson" in block["stopping"]
        and f"of {block['n_resamples']} resamples" in block["statement"]
    )
    assert main([*args, *flags, "--out", str(tmp_path / "all"), "--no-bootstrap-early-stop"]) == 0
    every = RankingResult.load(tmp_path / "all").bootstrap.to_dict()  # the keys report.json has
    assert every["n_resamples"] == 130 and "n_requested" not in every and "stopping" not in every
    if block["n_resamples"] < 130:  # the statement says why fewer were used than requested
        assert (
            f"{block['n_resamples']} of the 130 resamples requested were used: early stopping"
            in block["statement"]
        )
    one_round = [*args[:-1], "50", *flags, "--out", str(tmp_path / "one_round")]
    assert (
        main(one_round) == 0
    )  # fewer than one round of 60: the rule never ran, so the report does not state it
    short = RankingResult.load(tmp_path / "one_round").bootstrap.to_dict()
    assert short["n_resamples"] == short["n_requested"] == 50 and "stopping" not in short
