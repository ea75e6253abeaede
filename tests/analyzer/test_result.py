"""RankingResult: the one result object and its report.json schema."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from analyzer.reports.csv_report import ranking_table
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
    ranks = [row.rank for row in result.ranking]
    assert ranks[0] == 1 and ranks == sorted(ranks)
    scores = [row.aggregate_score for row in result.ranking]
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
    table = ranking_table(result)
    assert list(table["model"]) == result.models
    for name in result.metric_names():
        assert name in table.columns and f"{name}_rank" in table.columns
    assert table.loc[0, "logme"] == pytest.approx(result.ranking[0].scores["logme"])


def test_validate_gives_perfect_statistics_for_a_metric_equal_to_the_truth():
    result = make_run(with_validation=False)
    truth = {row.model: row.scores["logme"] for row in result.ranking}
    validation = result.with_validation(truth).validation
    row = next(r for r in validation.rows if r.metric == "logme")
    assert row.weighted_tau == pytest.approx(1.0)
    assert row.kendall_tau == pytest.approx(1.0)
    assert row.top1_regret == pytest.approx(0.0)
    assert row.top3_recall == pytest.approx(1.0)
    assert {r.metric for r in validation.rows} >= {"aggregate", "num_params", "alpha"}


def test_validate_orients_lower_is_better_metrics():
    result = make_run(with_validation=False)
    # alpha is lower-is-better: a truth that decreases with alpha must give tau = +1.
    truth = {row.model: -row.scores["alpha"] for row in result.ranking}
    row = next(r for r in result.with_validation(truth).validation.rows if r.metric == "alpha")
    assert row.kendall_tau == pytest.approx(1.0)


def test_validate_with_truth_for_other_models_names_both_sides():
    result = make_run()
    with pytest.raises(ReportError, match="names 0 of the report's"):
        result.with_validation({"timm:other": 0.5, "timm:another": 0.6})


# ------------------------------------------------------------------------------------ reading any report.json
@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ([1, 2], "not a JSON object"),
        ({"ranking": []}, "schema_version None"),
        ({"schema_version": 1}, "no 'ranking' list"),
        ({"schema_version": 1, "ranking": [{"model": "a", "rank": 1}]}, "lacks one of"),
        ({"schema_version": 1, "ranking": [{"model": "a", "rank": 1, "scores": [1]}]}, "not an object"),
    ],
)
def test_from_dict_rejects_what_is_not_a_report_naming_the_source_and_the_fix(data, needle):
    with pytest.raises(ReportError) as info:
        RankingResult.from_dict(data, "x.json")
    assert needle in str(info.value) and "x.json" in str(info.value) and info.value.fix


def test_from_bytes_explains_undecodable_uploads():
    with pytest.raises(ReportError, match="not UTF-8"):
        RankingResult.from_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ReportError, match="not valid JSON: .* line 1"):
        RankingResult.from_bytes(b'{"schema_version": 1,')


def test_a_minimal_hand_made_report_gets_every_section_filled():
    minimal = {
        "schema_version": 1,
        "ranking": [
            {"model": "b", "rank": 2, "scores": {"knn": 0.5}},
            {"model": "a", "rank": 1, "scores": {"knn": 0.9}},
        ],
    }
    result = RankingResult.from_dict(minimal)
    assert result.models == ["a", "b"]  # best first whatever the file order
    assert result.metric_names() == ["knn"] and result.spectrum == {} and result.validation is None
    assert result.headline().startswith("Recommendation: a") and result.mean_agreement() is None
    assert list(ranking_table(result)["knn"]) == [0.9, 0.5]


# ----------------------------------------------------------------------------------------- shared judgements
def _two(scores_a, scores_b, boot=None):
    """Two candidates scored on the given metrics (higher is better), ranked as the ranking would."""
    from tests.fixtures.make_run import aggregate_of as assemble_result

    names = list(scores_a)
    return assemble_result(
        name="t",
        dataset={},
        config={},
        metric_entries=[
            {"name": n, "params": {}, "higher_is_better": True, "kind": "label", "in_aggregate": True}
            for n in names
        ],
        candidates=[
            {"model": "timm:a", "scores": scores_a, "num_params": 1_000_000},
            {"model": "timm:b", "scores": scores_b, "num_params": 2_000_000},
        ],
        environment={},
        created="2026-01-01T00:00:00+00:00",
    )


def test_an_exact_tie_without_a_bootstrap_is_said_in_the_headline():
    result = _two({"logme": 1.0, "knn": 0.5}, {"logme": 0.0, "knn": 0.9})
    assert result.bootstrap is None and result.top_tie() == ["timm:a", "timm:b"]
    assert result.headline().startswith("Tied: a and b (mean rank 1.50, mean rank 1.50)")
    assert result.runner_up() is None
    assert "Tied: a and b" in __import__("analyzer.reports.markdown", fromlist=["render"]).render(result)


def test_a_clear_pick_names_the_runner_up_inline():
    result = _two({"logme": 1.0, "knn": 0.9}, {"logme": 0.0, "knn": 0.5})
    assert result.top_tie() == ["timm:a"] and result.runner_up() == "timm:b"
    assert result.headline() == (
        "Recommendation: a (mean rank 1.00); runner-up b (mean rank 2.00). Relied on the mean rank of logme, knn."
    )


def test_agreement_needs_three_candidates_and_the_reports_say_so():
    from analyzer.reports import markdown

    two = make_run(n_models=2)
    assert two.mean_agreement() is None
    assert "needs at least 3 ranked candidates" in markdown.render(two)
    assert make_run(n_models=5).mean_agreement() is not None


def test_ranking_csv_has_every_column_once_and_counts_as_integers(tmp_path):
    import pandas as pd

    make_run(tmp_path, save=True)
    header = (tmp_path / "ranking.csv").read_text().splitlines()[0].split(",")
    assert len(header) == len(set(header)) and "num_params" in header and "source_accuracy" in header
    frame = pd.read_csv(tmp_path / "ranking.csv")
    assert not any(c.endswith(".1") for c in frame.columns)
    assert frame["num_params"].dtype.kind == "i"


def test_a_network_with_layers_outside_the_band_is_warned_about():
    result = make_run()
    model = result.models[0]
    layers = [replace(layer, flag="under-trained?") for layer in result.spectrum[model].layers]
    result = replace(
        result, spectrum={**result.spectrum, model: replace(result.spectrum[model], layers=layers)}
    )
    warnings = result.spectrum_warnings()
    assert model in warnings and "outside the well-trained alpha range 2–6" in warnings[model]
    from analyzer.reports import markdown

    assert "⚠" in markdown.render(result)


# ----------------------------------------------------------------------------------------- few images per class
def _three(scores: dict[str, tuple[float, float, float]], per_class: int, aggregate: list[str] | None = None):
    """Candidates a, b, c scored per metric (higher is better) on a 10-class dataset of ``per_class`` images each."""
    from tests.fixtures.make_run import aggregate_of as assemble_result

    members = aggregate or list(scores)
    return assemble_result(
        name="t",
        dataset={"n_samples": 10 * per_class, "n_classes": 10},
        config={},
        metric_entries=[
            {"name": n, "params": {}, "higher_is_better": True, "kind": "label", "in_aggregate": n in members}
            for n in scores
        ],
        candidates=[
            {
                "model": f"timm:{m}",
                "scores": {n: v[i] for n, v in scores.items()},
                "num_params": 1_000_000 * (i + 1),
            }
            for i, m in enumerate("abc")
        ],
        environment={},
        created="2026-01-01T00:00:00+00:00",
    )


def test_the_headline_says_which_metrics_the_recommendation_relied_on():
    result = _three({"logme": (3, 2, 1), "knn": (3, 2, 1), "sfda": (3, 1, 2)}, per_class=100)
    assert result.headline().endswith("Relied on the mean rank of logme, knn, sfda.")
    alone = _three({"logme": (3, 2, 1), "knn": (1, 2, 3)}, per_class=100, aggregate=["logme"])
    assert alone.headline().endswith("Relied on logme alone.")


def test_enough_images_per_class_give_no_few_per_class_note():
    from analyzer.metric_record import few_per_class

    below = int(few_per_class()["below"])
    assert _three({"logme": (3, 2, 1), "knn": (1, 2, 3)}, per_class=below).few_per_class_note() is None
    assert (
        _three({"logme": (3, 2, 1), "knn": (1, 2, 3)}, per_class=below - 1).few_per_class_note() is not None
    )


def test_few_images_per_class_point_to_knn_and_say_when_it_agrees_with_the_pick():
    note = _three(
        {"logme": (3, 2, 1), "knn": (3, 1, 2), "sfda": (1, 3, 2)}, per_class=10
    ).few_per_class_note()
    assert note is not None and note.startswith("Few images per class (about 10; fewer than 60)")
    assert "trust knn's column over the aggregate" in note and "SFDA and PED saturate" in note
    assert note.endswith("knn agrees: it ranks a first too.")
    assert _three({"logme": (3, 2, 1), "knn": (3, 1, 2)}, per_class=10).few_per_class_agrees() is True


def test_few_images_per_class_say_what_knn_picks_when_it_disagrees():
    result = _three({"logme": (3, 2, 1), "ncti": (3, 2, 1), "sfda": (3, 2, 1), "knn": (1, 3, 2)}, per_class=5)
    assert result.top_tie() == ["timm:a"] and result.few_per_class_agrees() is False
    note = result.few_per_class_note()
    assert note is not None and note.endswith(
        "knn disagrees: it ranks b first (the aggregate's pick, a, is its #3)."
    )


def test_few_images_per_class_without_knn_ask_for_it_and_knn_alone_needs_no_note():
    note = _three({"logme": (3, 2, 1), "sfda": (3, 1, 2)}, per_class=10).few_per_class_note()
    assert note is not None and note.endswith(
        "knn was not scored in this run: add it to the run's metrics to see its pick."
    )
    assert (
        _three({"knn": (3, 2, 1), "logme": (1, 2, 3)}, per_class=10, aggregate=["knn"]).few_per_class_note()
        is None
    )


def test_the_default_aggregates_few_per_class_numbers_come_from_the_record():
    from analyzer.metric_record import aggregate_key, few_per_class, few_shot_worst_case, load
    from analyzer.ranking import DEFAULT_AGGREGATE

    trusted = few_per_class()["trust"]
    # the record's claim: the trusted metric has the best few-shot worst case of every metric and aggregate
    worst = {m: few_shot_worst_case(m) for m in load()["weighted_tau"] if few_shot_worst_case(m) is not None}
    assert max(worst, key=worst.__getitem__) == trusted
    default = _three({m: (3, 2, 1) for m in DEFAULT_AGGREGATE}, per_class=10)
    note = default.few_per_class_note()
    expected = (
        f"{trusted} {worst[trusted]:.3f}, this aggregate {worst[aggregate_key(list(DEFAULT_AGGREGATE))]:.3f}"
    )
    assert note is not None and expected in note


def test_the_basis_names_only_the_aggregate_members_that_scored_and_says_which_did_not():
    result = make_run(n_models=3)
    members = result.aggregate_metrics
    assert result.basis() == f"Relied on the mean rank of {', '.join(members)}."
    gone = members[-1]
    rows = tuple(replace(r, scores={**r.scores, gone: None}) for r in result.ranking)
    unscored = replace(result, ranking=rows)
    kept = ", ".join(members[:-1])
    assert unscored.basis() == (
        f"Relied on the mean rank of {kept} ({gone} scored no candidate)."
        if len(members) > 2
        else f"Relied on {kept} alone ({gone} scored no candidate)."
    )
