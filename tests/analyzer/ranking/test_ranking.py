"""Ranker and the aggregate: ranks with ties, bootstrap, baselines, skips, failures and resuming."""

from __future__ import annotations

import numpy as np
import pytest

import metrics
from analyzer.ranking import (
    DEFAULT_AGGREGATE,
    DEFAULT_METRICS,
    Ranker,
    RankingError,
    bootstrap_summary,
    check_metric_names,
    mean_ranks,
    rank_values,
    stratified_subsamples,
)
from analyzer.ranking.scale_free import scoring_features
from analyzer.request import RequestError
from analyzer.truth import TruthError, load_ground_truth
from tests.fixtures.make_run import aggregate_of as assemble_result
from tests.fixtures.make_run import make_image_folder, make_torchscript_model


# ------------------------------------------------------------------ pure helpers
def test_ties_share_the_average_rank_and_missing_values_stay_missing():
    assert rank_values([0.9, 0.5, 0.9, None]) == [1.5, 3.0, 1.5, None]
    assert rank_values([0.9, 0.5, 0.9, None], method="min") == [1, 3, 1, None]
    assert rank_values([3.0, 1.0], higher_is_better=False) == [2.0, 1.0]


def test_mean_rank_averages_over_the_metrics_a_candidate_has():
    table = np.array([[3.0, 2.0, 1.0], [np.nan, 2.0, 1.0]])  # second metric missing for candidate 0
    agg = mean_ranks(table, [True, True])
    assert agg.tolist() == pytest.approx([1.0, 1.5, 2.5])


def _entries(names):
    return [
        {"name": n, "params": {}, "higher_is_better": True, "kind": "label", "in_aggregate": True}
        for n in names
    ]


def test_assemble_orders_best_first_and_says_which_metrics_agree():
    candidates = [
        {"model": "a", "scores": {"m1": 0.1, "m2": 0.9, "m3": 0.2, "m4": 0.1}, "num_params": 10},
        {"model": "b", "scores": {"m1": 0.9, "m2": 0.8, "m3": 0.9, "m4": 0.9}, "num_params": 30},
        {"model": "c", "scores": {"m1": 0.5, "m2": 0.1, "m3": 0.5, "m4": 0.5}, "num_params": 20},
    ]
    result = assemble_result(
        name="t",
        dataset={},
        config={},
        metric_entries=_entries(["m1", "m2", "m3", "m4"]),
        candidates=candidates,
    )
    assert result.models == ["b", "c", "a"]
    top = result.ranking[0]
    assert top.rank == 1 and set(top.agree) == {"m1", "m2", "m3", "m4"}
    last = result.ranking[2]
    assert last.disagree == ["m2"]  # m2 ranks "a" first, the aggregate last
    assert result.baseline_agreement["m1"]["num_params"] == pytest.approx(1.0)
    assert result.baseline_agreement["m1"]["source_accuracy"] is None  # no candidate has one


def test_equal_aggregates_share_a_rank():
    candidates = [{"model": m, "scores": {"m1": s1, "m2": s2}} for m, s1, s2 in (("a", 1, 0), ("b", 0, 1))]
    result = assemble_result(
        name="t", dataset={}, config={}, metric_entries=_entries(["m1", "m2"]), candidates=candidates
    )
    assert [r.rank for r in result.ranking] == [1, 1]


def test_bootstrap_says_plainly_when_the_top_is_tied():
    rng = np.random.default_rng(0)
    scores = {"m": rng.normal(size=(100, 3)) + np.array([1.0, 1.0, -5.0])}  # a and b interchangeable
    p_best, intervals, block = bootstrap_summary(
        ["a", "b", "c"], scores, {"m": True}, n_resamples=100, seed=0, fraction=0.8
    )
    assert sum(p_best.values()) == pytest.approx(1.0)
    assert p_best["c"] == 0.0 and intervals["c"] == [3, 3]
    assert set(block["tied_top"]) == {"a", "b"} and block["statement"].startswith("Tied: a and b")


def test_bootstrap_calls_a_clear_winner_clear():
    scores = {"m": np.tile([3.0, 1.0, 0.0], (60, 1))}
    p_best, _, block = bootstrap_summary(
        ["a", "b", "c"], scores, {"m": True}, n_resamples=60, seed=0, fraction=0.8
    )
    assert p_best["a"] == 1.0 and block["tied_top"] == ["a"] and block["not_ruled_out"] == []
    assert block["statement"].startswith("Clear: a, best in 100% of 60 resamples")


def test_under_59_resamples_a_runner_up_that_never_won_is_not_ruled_out():
    # 0 wins of 50: the one-sided 95 % upper bound is 1 - 0.05^(1/50) = 5.8 %, above the 5 % tie line
    scores = {"m": np.tile([3.0, 1.0, 0.0], (50, 1))}
    _, _, block = bootstrap_summary(
        ["a", "b", "c"], scores, {"m": True}, n_resamples=50, seed=0, fraction=0.8
    )
    assert block["tied_top"] == ["a"] and block["not_ruled_out"] == ["b", "c"]
    assert block["statement"].startswith(
        "Likely best: a, best in 100% of 50 resamples; b (0%), c (0%) not ruled"
    )


def test_subsamples_are_stratified_without_replacement():
    labels = np.repeat([0, 1, 2], [10, 20, 30])
    subsets = stratified_subsamples(labels, 5, 0.8, seed=0)
    for idx in subsets:
        assert len(np.unique(idx)) == len(idx)
        assert np.bincount(labels[idx]).tolist() == [8, 16, 24]
    assert not np.array_equal(subsets[0], subsets[1])
    assert all(
        np.array_equal(a, b)
        for a, b in zip(subsets, stratified_subsamples(labels, 5, 0.8, seed=0), strict=True)
    )


def test_unknown_metric_names_list_the_valid_ones():
    with pytest.raises(RequestError, match="choose from: .*logme"):
        check_metric_names(["logme", "lgome"])


def test_ground_truth_csv_errors_name_the_problem(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("model,acc\na,0.5\n")
    with pytest.raises(TruthError, match="lacks the column"):
        load_ground_truth(path)
    path.write_text("model,accuracy,dataset\na,0.5,x\nb,0.7,y\n")
    assert load_ground_truth(path, dataset="y") == {"b": 0.7}
    with pytest.raises(TruthError, match="no rows for dataset 'z'"):
        load_ground_truth(path, dataset="z")


# ------------------------------------------------------------------ end to end on tiny TorchScript models
@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    data = make_image_folder(root / "images", classes=3, per_class=10)
    specs = [
        make_torchscript_model(root / "m0.pt", seed=0, width=8, source_accuracy=0.7),
        make_torchscript_model(root / "m1.pt", seed=1, width=12, source_accuracy=0.6),
        make_torchscript_model(root / "m2.pt", seed=2, width=6, classify=False),
    ]
    return data, specs


def test_ranker_ranks_skips_inapplicable_metrics_and_reports_a_failed_candidate(pool, tmp_path):
    data, specs = pool
    missing = f"torchscript:{tmp_path / 'missing.pt'}"
    ranker = Ranker(data, cache_dir=tmp_path / "cache", progress=False)
    result = ranker.run(
        [*specs, missing],
        ["logme", "knn", "leep"],
        n_bootstrap=8,
        ground_truth={s: i for i, s in enumerate(specs)},
    )
    assert sorted(result.models) == sorted(specs)
    assert [f.model for f in result.failed] == [missing]
    assert [(s.model, s.metric) for s in result.skipped] == [(specs[2], "leep")]
    assert "source_probs" in result.skipped[0].reason
    by_model = {r.model: r for r in result.ranking}
    assert by_model[specs[0]].source_accuracy == pytest.approx(0.7)
    assert by_model[specs[1]].feature_dim == 12
    features = ranker._store().get(by_model[specs[0]].feature_key).features
    # LogME moves with the features' scale (by ~0.1 %): the ranking scores it on the rescaled features
    assert by_model[specs[0]].scores["logme"] == pytest.approx(
        metrics.compute("logme", scoring_features("logme", features), ranker.dataset.labels)
    )
    assert sum(r.p_best for r in result.ranking) == pytest.approx(1.0)
    assert result.bootstrap.n_resamples == 8
    assert result.validation is not None and result.validation.rows[0].metric == "aggregate"
    assert result.aggregate.metrics == ["logme", "knn", "leep"]


def test_a_second_run_recomputes_no_score(pool, tmp_path, monkeypatch):
    data, specs = pool
    first = Ranker(data, cache_dir=tmp_path, progress=False).run(specs[:2], ["logme", "knn"], n_bootstrap=4)

    def no_compute(*args, **kwargs):
        raise AssertionError("a cached score was recomputed")

    monkeypatch.setattr(metrics, "compute", no_compute)
    monkeypatch.setattr(metrics, "pool_terms", no_compute)
    again = Ranker(data, cache_dir=tmp_path, progress=False).run(specs[:2], ["logme", "knn"], n_bootstrap=4)
    assert [r.scores for r in again.ranking] == [r.scores for r in first.ranking]
    assert [r.p_best for r in again.ranking] == [r.p_best for r in first.ranking]


def test_progress_events_announce_each_unit_of_work_and_each_failure(pool, tmp_path):
    data, specs = pool
    missing = f"torchscript:{tmp_path / 'missing.pt'}"
    events = []
    ranker = Ranker(data, cache_dir=tmp_path, progress=False, on_progress=events.append)
    ranker.run([specs[0], missing, specs[1]], ["logme", "knn"], n_bootstrap=2)
    seen = [(e.stage, e.unit, e.model, e.error is not None) for e in events]
    assert (
        seen
        == [
            ("features", "", specs[0], False),
            ("features", "", missing, False),
            ("features", "", missing, True),  # the failure: a field to read, not a message to parse
            ("features", "", specs[1], False),
            *[("cost", "", spec, False) for spec in specs[:2]],
            *[("scores", metric, spec, False) for metric in ("logme", "knn") for spec in specs[:2]],
            *[("bootstrap", "1-2", spec, False) for spec in specs[:2] for _metric in ("logme", "knn")],
        ]
    )
    assert "missing.pt" in str(events[2].error) and all(e.elapsed >= 0 for e in events)
    assert [e.label for e in events[-2:]] == ["bootstrap 1-2"] * 2  # what a progress bar is called
    events.clear()  # a second run has only the extraction left to announce: every score is cached
    Ranker(data, cache_dir=tmp_path, progress=False, on_progress=events.append).run(
        specs[:2], ["logme", "knn"], n_bootstrap=2
    )
    assert [e.stage for e in events] == ["features", "features"]


def test_a_metric_that_fails_on_a_candidate_is_skipped_with_its_reason(pool, tmp_path):
    data, specs = pool
    result = Ranker(data, cache_dir=tmp_path, progress=False).run(specs[:2], ["ncti", "logme"], n_bootstrap=0)
    assert {s.metric for s in result.skipped} == {"ncti"}
    assert all("at least 64 samples" in s.reason for s in result.skipped)
    assert [r.scores["ncti"] for r in result.ranking] == [None, None]
    assert all(r.scores["logme"] is not None for r in result.ranking)


def test_pool_level_metric_is_finalised_across_the_candidates(tmp_path):
    # NCTI needs N >= 64 and D >= 64.
    data = make_image_folder(tmp_path / "images", classes=3, per_class=22)
    specs = [make_torchscript_model(tmp_path / f"w{i}.pt", seed=i, width=64 + 4 * i) for i in range(3)]
    ranker = Ranker(data, cache_dir=tmp_path / "cache", progress=False)
    result = ranker.run(specs, ["ncti"], n_bootstrap=3)
    assert result.skipped == [] and result.bootstrap.n_resamples == 3
    feats = [scoring_features("ncti", ranker._store().get(r.feature_key).features) for r in result.ranking]
    expected = metrics.compute_pool("ncti", feats, ranker.dataset.labels)  # on the rescaled features
    assert [r.scores["ncti"] for r in result.ranking] == pytest.approx(expected)


def test_every_candidate_failing_is_an_error_listing_them(pool, tmp_path):
    data, _ = pool
    with pytest.raises(RankingError, match="every candidate failed"):
        Ranker(data, cache_dir=tmp_path, progress=False).run([f"torchscript:{tmp_path / 'x.pt'}"], ["logme"])


def test_aggregate_must_be_among_the_requested_metrics(pool, tmp_path):
    data, specs = pool
    with pytest.raises(RequestError, match="not among the requested metrics"):
        Ranker(data, cache_dir=tmp_path, progress=False).run(specs, ["logme"], aggregate=["knn"])


def test_default_report_scores_every_headline_metric_and_aggregates_the_default_subset(pool, tmp_path):
    data, specs = pool
    result = Ranker(data, cache_dir=tmp_path, progress=False).run(specs[:2], n_bootstrap=0)
    assert [m.name for m in result.metrics if m.kind != "baseline"] == [*DEFAULT_METRICS, "alpha"]
    assert {"logme", "knn", "tmi", "ped", "sfda", "ncti"} == set(DEFAULT_METRICS)
    assert result.aggregate.metrics == list(DEFAULT_AGGREGATE)
    assert "Why these metrics: best worst-case" in result.aggregate.description
    assert not result.metric("tmi").in_aggregate and result.metric("sfda").in_aggregate
    alpha = result.metric("alpha")
    assert alpha.kind == "data_free" and not alpha.in_aggregate and alpha.higher_is_better is False
    for row in result.ranking:
        assert row.scores["alpha"] == pytest.approx(result.spectrum[row.model].alpha_weighted)


def test_a_run_interrupted_mid_scoring_resumes_without_recomputing_finished_scores(
    pool, tmp_path, monkeypatch
):
    data, specs = pool
    real_compute = metrics.compute
    calls: list[str] = []

    def interrupted(name, *args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C during the third score
        calls.append(name)
        return real_compute(name, *args, **kwargs)

    monkeypatch.setattr(metrics, "compute", interrupted)
    with pytest.raises(KeyboardInterrupt):
        Ranker(data, cache_dir=tmp_path, progress=False).run(specs, ["logme", "knn"], n_bootstrap=0)
    assert calls == ["logme", "logme"]

    resumed: list[str] = []

    def counting(name, *args, **kwargs):
        resumed.append(name)
        return real_compute(name, *args, **kwargs)

    monkeypatch.setattr(metrics, "compute", counting)
    result = Ranker(data, cache_dir=tmp_path, progress=False).run(specs, ["logme", "knn"], n_bootstrap=0)
    assert resumed == ["logme", "knn", "knn", "knn"]  # only what had not finished
    assert all(r.scores["knn"] is not None for r in result.ranking)
