"""analyzer.dashboard: the dashboard's data helpers, without Streamlit."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyzer import dashboard as dash
from analyzer.errors import AnalyzerError
from tests.fixtures.make_run import make_run


@pytest.fixture(scope="module")
def report() -> dict:
    return dash.parse_report(make_run(n_models=6, seed=2).to_dict())


def _write_run(root: Path, dirname: str, report: dict, mtime: float | None = None) -> Path:
    run = root / "runs" / dirname
    run.mkdir(parents=True)
    (run / "report.json").write_text(json.dumps(report))
    if mtime is not None:
        os.utime(run / "report.json", (mtime, mtime))
    return run


# ----------------------------------------------------------------------------------------------- runs


def test_list_runs_is_newest_first_and_skips_unfinished_runs(tmp_path: Path, report: dict) -> None:
    old = _write_run(tmp_path, "20250101-120000-old", report, mtime=3_000_000)
    new = _write_run(
        tmp_path, "20250301-090000-new", report, mtime=1_000_000
    )  # mtime does not override the name
    copied = _write_run(tmp_path, "copied-in", report, mtime=2_000_000_000)  # no timestamp: goes by mtime
    (tmp_path / "runs" / "20260101-000000-running").mkdir()  # no report.json yet
    runs = dash.list_runs(tmp_path)
    assert [r.path for r in runs] == [copied, new, old]
    assert runs[1].name == "new" and runs[1].label == "2025-03-01 09:00:00 · new"
    assert runs[0].started is None and runs[0].label == "unknown time · copied-in"


def test_list_runs_of_a_cache_without_runs_is_empty(tmp_path: Path) -> None:
    assert dash.list_runs(tmp_path) == []


# -------------------------------------------------------------------------------------------- reports


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ([1, 2], "not a JSON object"),
        ({"ranking": []}, "no 'schema_version'"),
        ({"schema_version": 2, "ranking": []}, "schema_version 2"),
        ({"schema_version": 1}, "no 'ranking' list"),
        ({"schema_version": 1, "ranking": [{"model": "a", "rank": 1}]}, "lacks one of"),
        ({"schema_version": 1, "ranking": [{"model": "a", "rank": 1, "scores": [1]}]}, "not an object"),
    ],
)
def test_parse_report_rejects_what_is_not_a_report_with_a_fix(data: object, needle: str) -> None:
    with pytest.raises(dash.ReportError) as info:
        dash.parse_report(data, "x.json")
    assert needle in str(info.value) and "x.json" in str(info.value) and info.value.fix


def test_read_report_bytes_explains_undecodable_uploads() -> None:
    with pytest.raises(dash.ReportError, match="not UTF-8"):
        dash.read_report_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(dash.ReportError, match="not valid JSON: .* line 1"):
        dash.read_report_bytes(b'{"schema_version": 1,')


def test_load_report_of_a_missing_run_names_the_file(tmp_path: Path) -> None:
    with pytest.raises(dash.ReportError, match="cannot read .*report.json"):
        dash.load_report(tmp_path / "nothing" / "report.json")


def test_a_minimal_hand_made_report_gets_every_section_filled() -> None:
    minimal = {
        "schema_version": 1,
        "ranking": [
            {"model": "b", "rank": 2, "scores": {"knn": 0.5}},
            {"model": "a", "rank": 1, "scores": {"knn": 0.9}},
        ],
    }
    report = dash.parse_report(minimal)
    assert [r["model"] for r in report["ranking"]] == ["a", "b"]  # best first whatever the file order
    assert dash.metric_names(report) == ["knn"]
    assert report["spectrum"] == {} and report["validation"] is None and report["failed"] == []
    assert dash.ground_truth(report) is None and dash.validation_table(report) is None
    assert dash.spectrum_models(report) == []
    rec = dash.recommendation(report)
    assert (rec.best, rec.runner_up, rec.margin, rec.mean_tau) == ("a", "b", None, None)
    assert rec.agreement_level == "unknown"


# -------------------------------------------------------------------------------------- ranking table


def test_ranking_table_has_one_row_per_candidate_and_the_promised_columns(report: dict) -> None:
    table = dash.ranking_table(report)
    assert list(table["model"]) == [r["model"] for r in report["ranking"]]
    assert list(table["rank"]) == [r["rank"] for r in report["ranking"]]
    for name in ("logme", "knn", "ncti", "sfda", "alpha"):
        assert name in table and f"{name} rank" in table
    # baselines appear once, as params / source acc, not as metric columns
    assert "num_params" not in table and "params" in table and "source acc" in table
    assert {"aggregate rank", "feature dim", "extraction s", "P(best)", "rank interval"} <= set(table.columns)
    first = report["ranking"][0]
    assert table.loc[0, "logme"] == pytest.approx(first["scores"]["logme"])
    assert table.loc[0, "params"] == first["num_params"]
    # Sorting by a column works numerically (a missing source accuracy is NaN, not a string).
    assert table["source acc"].dtype.kind == "f"
    assert table.sort_values("feature dim")["feature dim"].is_monotonic_increasing


def test_ranking_csv_round_trips_through_pandas(report: dict) -> None:
    csv = pd.read_csv(io.BytesIO(dash.ranking_csv(report)))
    assert list(csv["model"]) == [r["model"] for r in report["ranking"]]
    assert csv["knn"].to_numpy() == pytest.approx([r["scores"]["knn"] for r in report["ranking"]])


# ------------------------------------------------------------------------------------------ downloads


def test_downloads_of_a_run_directory_serve_its_files_byte_for_byte(tmp_path: Path) -> None:
    result = make_run(tmp_path / "runs" / "20260101-000000-x", n_models=3, save=True)
    report = dash.load_report(result.run_dir)
    files, missing = dash.downloads(report, result.run_dir)
    assert missing == []
    assert [f.fmt for f in files] == ["csv", "json", "md", "html"]
    for item in files:
        assert item.data == (result.run_dir / dash.REPORT_FILES[item.fmt]).read_bytes()
        assert item.file_name.endswith(dash.REPORT_FILES[item.fmt])


def test_downloads_of_an_upload_are_rendered_and_valid(report: dict) -> None:
    files = {f.fmt: f for f in dash.downloads(report)[0]}
    assert set(files) == {"csv", "json", "md", "html"}
    assert dash.read_report_bytes(files["json"].data)["ranking"] == report["ranking"]
    assert list(pd.read_csv(io.BytesIO(files["csv"].data))["model"]) == [
        r["model"] for r in report["ranking"]
    ]
    assert report["ranking"][0]["model"] in files["md"].data.decode()
    assert b"<html" in files["html"].data.lower()


def test_downloads_without_writers_say_which_formats_are_missing(report: dict) -> None:
    files, missing = dash.downloads(report, renderers={})
    assert [f.fmt for f in files] == ["csv", "json"]
    assert len(missing) == 2 and all("no report writer" in m for m in missing)


def test_a_failing_writer_is_reported_not_raised(report: dict) -> None:
    def broken(_: object) -> str:
        raise ValueError("boom")

    files, missing = dash.downloads(report, renderers={"md": broken})
    assert "md" not in {f.fmt for f in files} and any("boom" in m for m in missing)


# ------------------------------------------------------------------------------------ recommendation


def _tiny(scores: dict[str, list[float]], models: list[str], hib: dict[str, bool] | None = None) -> dict:
    """A report with the given raw scores; ranks and aggregate derived here so the expectations are explicit."""
    hib = hib or {}
    metrics = [
        {"name": n, "params": {}, "higher_is_better": hib.get(n, True), "kind": "label", "in_aggregate": True}
        for n in scores
    ]
    ranks = {
        n: pd.Series(v).rank(ascending=not hib.get(n, True), method="min").astype(int)
        for n, v in scores.items()
    }
    agg = np.mean([ranks[n].to_numpy() for n in scores], axis=0)
    order = np.argsort(agg, kind="stable")
    rows = [
        {
            "model": models[i],
            "rank": int(pos + 1),
            "aggregate_score": float(agg[i]),
            "scores": {n: scores[n][i] for n in scores},
            "metric_ranks": {n: int(ranks[n][i]) for n in scores},
        }
        for pos, i in enumerate(order)
    ]
    return dash.parse_report({"schema_version": 1, "metrics": metrics, "ranking": rows})


def test_recommendation_reports_margin_and_the_metrics_that_agree() -> None:
    report = _tiny({"a": [3, 2, 1], "b": [3, 1, 2], "c": [1, 2, 3]}, ["m1", "m2", "m3"])
    rec = dash.recommendation(report)
    # mean ranks: m1 (1+1+3)/3 = 5/3, m2 (2+3+2)/3 = 7/3, m3 (3+2+1)/3 = 2  -> m1, m3, m2
    assert rec.best == "m1" and rec.runner_up == "m3"
    assert rec.margin == pytest.approx(2 - 5 / 3)
    assert rec.agreeing == ["a", "b"] and rec.n_metrics == 3
    # tau(a,b) = 1/3, tau(a,c) = -1, tau(b,c) = -1/3  -> mean -1/3: the metrics disagree
    assert rec.mean_tau == pytest.approx(-1 / 3)
    assert rec.agreement_level == "weak"


def test_recommendation_of_perfectly_agreeing_metrics_is_strong() -> None:
    rec = dash.recommendation(_tiny({"a": [3, 2, 1], "b": [30, 20, 10]}, ["x", "y", "z"]))
    assert rec.mean_tau == pytest.approx(1.0) and rec.agreement_level == "strong"
    assert rec.margin == pytest.approx(1.0)


# ------------------------------------------------------------------------------------------ agreement


def test_agreement_computed_from_ranks_matches_the_rankings_own(report: dict) -> None:
    given = dash.agreement_matrix(report)
    stripped = dict(report, agreement=None)
    computed = dash.agreement_matrix(stripped, list(given.columns))
    np.testing.assert_allclose(computed.to_numpy(float), given.to_numpy(float), atol=1e-9)


def test_agreement_respects_lower_is_better_when_ranks_are_missing() -> None:
    report = _tiny({"up": [1.0, 2.0, 3.0], "down": [3.0, 2.0, 1.0]}, ["a", "b", "c"], hib={"down": False})
    for row in report["ranking"]:
        row["metric_ranks"] = {}
    matrix = dash.agreement_matrix(report)
    assert matrix.loc["up", "down"] == pytest.approx(1.0)  # both prefer c: full agreement
    assert dash.metric_scores(report, "down")["model"].tolist() == ["c", "b", "a"]


def test_metric_scores_leave_out_skipped_candidates(report: dict) -> None:
    report = json.loads(json.dumps(report))
    report["ranking"][1]["scores"]["knn"] = None
    frame = dash.metric_scores(report, "knn")
    assert report["ranking"][1]["model"] not in set(frame["model"])
    assert frame["rank"].is_monotonic_increasing and len(frame) == len(report["ranking"]) - 1


# --------------------------------------------------------------------------------------- ground truth


def test_ground_truth_pairs_scores_with_accuracy(report: dict) -> None:
    truth = dash.ground_truth(report)
    assert truth is not None
    assert dict(zip(truth["model"], truth["accuracy"], strict=True)) == pytest.approx(
        report["validation"]["truth"]
    )
    table = dash.validation_table(report)
    assert table is not None and list(table.columns[:3]) == ["metric", "weighted_tau", "kendall_tau"]
    row = next(r for r in report["validation"]["rows"] if r["metric"] == "logme")
    assert dash.weighted_tau(report, "logme") == pytest.approx(row["weighted_tau"])
    assert dash.weighted_tau(report, "no-such-metric") is None


# ------------------------------------------------------------------------------------------- spectrum


def test_spectrum_layers_in_depth_order_with_flags(report: dict) -> None:
    model = dash.spectrum_models(report)[0]
    assert model == report["ranking"][0]["model"]
    layers = dash.spectrum_layers(report, model)
    assert list(layers["depth"]) == list(range(len(report["spectrum"][model]["layers"])))
    assert list(layers["alpha"]) == pytest.approx([x["alpha"] for x in report["spectrum"][model]["layers"]])
    assert dash.esd_layers(report, model) == [str(x["layer_id"]) for x in report["spectrum"][model]["layers"]]


@pytest.mark.parametrize(
    ("alpha", "flag"), [(1.5, "over-trained?"), (2.0, "ok"), (6.0, "ok"), (7.2, "under-trained?")]
)
def test_alpha_flag_uses_the_2_to_6_band(alpha: float, flag: str) -> None:
    assert dash.alpha_flag(alpha) == flag


def test_esd_histogram_is_a_density_on_log_bins() -> None:
    rng = np.random.default_rng(0)
    eig = np.concatenate([rng.pareto(2.5, 2000) + 1.0, [0.0, -1.0, np.nan]])
    edges, density = dash.esd_histogram(eig, bins=30)
    assert len(edges) == 31 and len(density) == 30
    ratios = edges[1:] / edges[:-1]
    np.testing.assert_allclose(ratios, ratios[0])  # log-spaced
    assert float(np.sum(density * np.diff(edges))) == pytest.approx(1.0)  # the three bad values dropped
    with pytest.raises(ValueError, match="no positive eigenvalues"):
        dash.esd_histogram([0.0, -2.0])


# -------------------------------------------------------------------------------------- feature space


def test_stratified_sample_keeps_every_class_in_proportion() -> None:
    labels = np.array([0] * 9000 + [1] * 900 + [2] * 99 + [3])
    idx = dash.stratified_sample(labels, 1000, seed=1)
    assert len(idx) == 1000 and len(np.unique(idx)) == 1000 and np.all(np.diff(idx) > 0)
    counts = np.bincount(labels[idx])
    assert counts[3] == 1 and counts[2] >= 9 and abs(counts[0] - 900) <= 2
    np.testing.assert_array_equal(idx, dash.stratified_sample(labels, 1000, seed=1))
    np.testing.assert_array_equal(dash.stratified_sample(labels[:50], 1000), np.arange(50))


def _clusters(n_per_class: int, n_classes: int, dim: int, spread: float, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    centers = rng.normal(scale=spread, size=(n_classes, dim))
    return (centers[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def test_pca_projection_matches_the_top_principal_axes() -> None:
    features, labels = _clusters(100, 4, 16, spread=5.0)
    proj = dash.project_2d(features, labels, method="pca", max_points=10_000)
    assert proj.coords.shape == (400, 2) and proj.n_total == 400 and proj.explained is not None
    centered = features - features.mean(axis=0)
    _, s, vt = np.linalg.svd(centered.astype(np.float64), full_matrices=False)
    expected = centered @ vt[:2].T
    for axis in range(2):  # equal up to the sign of each axis
        assert abs(np.corrcoef(proj.coords[:, axis], expected[:, axis])[0, 1]) > 0.9999
    assert proj.explained[0] == pytest.approx(s[0] ** 2 / np.sum(s**2), rel=1e-4)


def test_projection_samples_large_feature_sets() -> None:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 20, size=100_000)
    features = rng.normal(size=(100_000, 32)).astype(np.float32)
    proj = dash.project_2d(features, labels, max_points=2000)
    assert proj.coords.shape == (2000, 2) and proj.n_total == 100_000
    np.testing.assert_array_equal(proj.labels, labels[proj.indices])


def test_tsne_separates_well_separated_classes() -> None:
    features, labels = _clusters(40, 3, 64, spread=10.0)
    proj = dash.project_2d(features, labels, method="tsne", max_points=120)
    assert proj.method == "tsne" and proj.coords.shape == (120, 2) and proj.explained is None
    conf = dash.knn_confusion(proj.coords, proj.labels, k=5)
    assert conf.accuracy > 0.95


def test_projection_rejects_mismatched_inputs_and_unknown_methods() -> None:
    features, labels = _clusters(10, 2, 4, spread=1.0)
    with pytest.raises(ValueError, match="one label per row"):
        dash.project_2d(features, labels[:-1])
    with pytest.raises(ValueError, match="unknown projection method"):
        dash.project_2d(features, labels, method="umap")


def test_knn_confusion_matches_a_brute_force_leave_one_out() -> None:
    features, labels = _clusters(30, 4, 8, spread=1.2, seed=3)  # overlapping: some confusion
    conf = dash.knn_confusion(features, labels, k=1)
    d = ((features[:, None, :] - features[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    pred = labels[d.argmin(axis=1)]
    expected = pd.crosstab(labels, pred).reindex(index=range(4), columns=range(4), fill_value=0).to_numpy()
    np.testing.assert_array_equal(conf.counts, expected)
    np.testing.assert_allclose(conf.matrix.sum(axis=1), 1.0)
    assert conf.accuracy == pytest.approx(np.mean(pred == labels))
    assert 0.3 < conf.accuracy < 1.0


def test_knn_confusion_of_separated_classes_is_the_identity() -> None:
    features, labels = _clusters(25, 5, 16, spread=20.0)
    conf = dash.knn_confusion(features, np.array(["abcde"[i] for i in labels]), k=5)
    np.testing.assert_array_equal(conf.matrix, np.eye(5))
    assert list(conf.classes) == list("abcde") and conf.accuracy == 1.0


def test_class_names_map_label_indices_to_dataset_names() -> None:
    names = dash.class_names_for(np.array([0, 2, 2]), {"class_names": ["cat", "dog", "eel"]})
    assert names == {0: "cat", 2: "eel"}
    assert dash.class_names_for(np.array(["x", "y"]), {}) == {"x": "x", "y": "y"}


def test_cached_features_come_from_the_feature_store(tmp_path: Path) -> None:
    from analyzer.store import FeatureStore

    features, labels = _clusters(5, 2, 3, spread=1.0)
    FeatureStore(tmp_path).put(
        "k" * 64, features=features, labels=labels, sample_ids=[str(i) for i in range(10)]
    )
    got, got_labels = dash.load_cached_features(tmp_path, "k" * 64, "m")
    np.testing.assert_array_equal(got, features)
    np.testing.assert_array_equal(got_labels, labels)


@pytest.mark.parametrize("key", [None, "f" * 64])
def test_missing_cached_features_raise_with_a_fix(tmp_path: Path, key: str | None) -> None:
    with pytest.raises(dash.FeaturesUnavailable) as info:
        dash.load_cached_features(tmp_path, key, "timm:x")
    assert "timm:x" in str(info.value) and info.value.fix


# ---------------------------------------------------------------------------------------- new ranking


def test_parse_candidates_splits_commas_and_lines_and_drops_duplicates() -> None:
    text = "timm:a, timm:b\n\n  timm:a\n# a comment\ntorchscript:/x/y.pt"
    assert dash.parse_candidates(text) == ["timm:a", "timm:b", "torchscript:/x/y.pt"]
    with pytest.raises(AnalyzerError, match="no candidate models given"):
        dash.parse_candidates(" ,\n ")


def test_start_ranking_refuses_a_missing_dataset_before_running(tmp_path: Path) -> None:
    with pytest.raises(AnalyzerError, match="no dataset given"):
        dash.start_ranking(tmp_path, data="  ", candidates="timm:resnet18")


def test_candidate_progress_follows_the_rankers_work_units() -> None:
    from analyzer.ranking import ProgressEvent

    seen: list[tuple[str, float, str]] = []
    tracker = dash._CandidateProgress(["timm:a", "timm:b"], 4, lambda m, f, msg: seen.append((m, f, msg)))
    tracker.event(ProgressEvent("features", "timm:a", "[rank] features: timm:a"))
    tracker.event(ProgressEvent("features", "timm:b", "[rank] features: timm:b"))
    tracker.event(ProgressEvent("failed", "timm:b", "[rank]   failed: no weights"))
    tracker.event(ProgressEvent("knn", "timm:a", "[rank] knn: timm:a"))
    tracker.event(ProgressEvent("knn", "timm:elsewhere", "not one of ours"))
    assert seen[-2][0] == "timm:b" and seen[-2][1] == 1.0 and "no weights" in seen[-2][2]
    assert seen[-1] == ("timm:a", 0.25, "knn")


def test_a_50_candidate_report_is_handled_quickly() -> None:
    rng = np.random.default_rng(0)
    models = [f"timm:model_{i:02d}" for i in range(50)]
    report = _tiny({f"m{j}": rng.normal(size=50).tolist() for j in range(8)}, models)
    table = dash.ranking_table(report)
    matrix = dash.agreement_matrix(report)
    rec = dash.recommendation(report)
    assert len(table) == 50 and matrix.shape == (8, 8) and rec.best == report["ranking"][0]["model"]


def test_a_cached_sample_copies_only_the_sampled_rows_out_of_the_store(tmp_path: Path) -> None:
    from analyzer.store import FeatureStore

    features, labels = _clusters(200, 5, 8, spread=2.0)
    FeatureStore(tmp_path).put(
        "s" * 64, features=features, labels=labels, sample_ids=[str(i) for i in range(1000)]
    )
    sample, sample_labels, n_total = dash.load_cached_sample(tmp_path, "s" * 64, max_points=100, seed=4)
    idx = dash.stratified_sample(labels, 100, seed=4)
    assert n_total == 1000 and sample.shape == (100, 8)
    np.testing.assert_array_equal(sample, features[idx])
    np.testing.assert_array_equal(sample_labels, labels[idx])
