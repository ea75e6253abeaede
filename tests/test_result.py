"""RankingResult: the one result object and its report.json schema."""

from __future__ import annotations

import json

import pytest

from analyzer.result import SCHEMA_VERSION, RankingResult, ReportError
from tests.fixtures.make_run import make_run


def test_to_dict_round_trips_through_strict_json():
    result = make_run()
    text = json.dumps(result.to_dict(), allow_nan=False)  # raises on NaN: browsers reject it
    again = RankingResult.from_dict(json.loads(text))
    assert again.to_dict() == result.to_dict()
    assert again.to_dict()["schema_version"] == SCHEMA_VERSION


def test_report_json_has_the_documented_top_level_fields():
    data = make_run().to_dict()
    for key in (
        "schema_version",
        "name",
        "created",
        "dataset",
        "config",
        "metrics",
        "aggregate",
        "ranking",
        "skipped",
        "failed",
        "bootstrap",
        "agreement",
        "baseline_agreement",
        "spectrum",
        "validation",
        "environment",
        "timings",
    ):
        assert key in data, key
    first = data["ranking"][0]
    for key in (
        "model",
        "rank",
        "aggregate_score",
        "scores",
        "metric_ranks",
        "num_params",
        "source_accuracy",
        "feature_dim",
        "extraction_seconds",
        "feature_key",
        "p_best",
        "rank_interval",
        "agree",
        "disagree",
    ):
        assert key in first, key


def test_ranking_is_best_first_with_rank_one_on_top():
    result = make_run(n_models=7)
    ranks = [row["rank"] for row in result.ranking]
    assert ranks[0] == 1 and ranks == sorted(ranks)
    scores = [row["aggregate_score"] for row in result.ranking]
    assert scores == sorted(scores)  # mean rank: lower is better


def test_unknown_schema_version_is_refused_with_a_fix():
    data = make_run().to_dict()
    data["schema_version"] = 99
    with pytest.raises(ReportError, match="schema_version 99"):
        RankingResult.from_dict(data)


def test_load_accepts_a_run_directory_and_names_a_missing_report(tmp_path):
    result = make_run(tmp_path / "run", save=True)
    loaded = RankingResult.load(tmp_path / "run")
    assert loaded.models == result.models and loaded.run_dir == tmp_path / "run"
    with pytest.raises(ReportError, match="no report at"):
        RankingResult.load(tmp_path / "nowhere")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ReportError, match="bad.json is not valid JSON"):
        RankingResult.load(tmp_path / "bad.json")


def test_table_has_one_row_per_candidate_and_score_and_rank_columns():
    result = make_run(n_models=4)
    table = result.table
    assert list(table["model"]) == result.models
    for name in result.metric_names():
        assert name in table.columns and f"{name}_rank" in table.columns
    assert table.loc[0, "logme"] == pytest.approx(result.ranking[0]["scores"]["logme"])


def test_validate_gives_perfect_statistics_for_a_metric_equal_to_the_truth():
    result = make_run(with_validation=False)
    truth = {row["model"]: row["scores"]["logme"] for row in result.ranking}
    validation = result.validate(truth)
    row = next(r for r in validation["rows"] if r["metric"] == "logme")
    assert row["weighted_tau"] == pytest.approx(1.0)
    assert row["kendall_tau"] == pytest.approx(1.0)
    assert row["top1_regret"] == pytest.approx(0.0)
    assert row["top3_recall"] == pytest.approx(1.0)
    assert {r["metric"] for r in validation["rows"]} >= {"aggregate", "num_params", "alpha"}


def test_validate_orients_lower_is_better_metrics():
    result = make_run(with_validation=False)
    # alpha is lower-is-better: a truth that decreases with alpha must give tau = +1.
    truth = {row["model"]: -row["scores"]["alpha"] for row in result.ranking}
    row = next(r for r in result.validate(truth)["rows"] if r["metric"] == "alpha")
    assert row["kendall_tau"] == pytest.approx(1.0)


def test_validate_with_truth_for_other_models_names_both_sides():
    result = make_run()
    with pytest.raises(ReportError, match="names 0 of the report's"):
        result.validate({"timm:other": 0.5, "timm:another": 0.6})
