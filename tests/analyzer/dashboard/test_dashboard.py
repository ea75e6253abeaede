"""analyzer.dashboard: what the dashboard draws, without Streamlit."""

from __future__ import annotations

import io
import json
import os
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analyzer import explain
from analyzer.dashboard import charts, features, form, runs, spectrum, table
from analyzer.errors import AnalyzerError
from analyzer.reports.csv_report import ranking_table
from analyzer.result import RankingResult
from tests.fixtures.make_run import make_run


@pytest.fixture(scope="module")
def result() -> RankingResult:
    return make_run(n_models=6, seed=2)


def _write_run(root: Path, dirname: str, result: RankingResult, mtime: float | None = None) -> Path:
    run = root / "runs" / dirname
    run.mkdir(parents=True)
    (run / "report.json").write_text(json.dumps(result.to_dict()))
    if mtime is not None:
        os.utime(run / "report.json", (mtime, mtime))
    return run


# ----------------------------------------------------------------------------------------------------- runs
def test_list_runs_is_newest_first_and_skips_unfinished_runs(tmp_path: Path, result: RankingResult) -> None:
    old = _write_run(tmp_path, "20250101-120000-old", result, mtime=3_000_000)
    new = _write_run(tmp_path, "20250301-090000-new", result, mtime=1_000_000)  # the name's time wins
    copied = _write_run(tmp_path, "copied-in", result, mtime=2_000_000_000)  # no timestamp: goes by mtime
    (tmp_path / "runs" / "20260101-000000-running").mkdir()  # no report.json yet
    found = runs.list_runs(tmp_path)
    assert [r.path for r in found] == [copied, new, old]
    assert found[1].label == "2025-03-01 09:00:00 · new"
    assert found[0].label == f"{runs.local_time(2_000_000_000.0)} · copied-in"
    assert runs.list_runs(tmp_path / "elsewhere") == []


def test_runs_with_the_same_name_and_time_get_distinct_labels(tmp_path: Path, result: RankingResult) -> None:
    _write_run(tmp_path, "20250101-120000-demo", result)
    _write_run(tmp_path, "20250101-120000-demo.1", result)
    _write_run(tmp_path, "x", result, mtime=datetime(2025, 1, 1, 12).timestamp())
    _write_run(tmp_path, "y", result, mtime=datetime(2025, 1, 1, 12).timestamp())
    labels = [r.label for r in runs.list_runs(tmp_path)]
    assert len(set(labels)) == len(labels) == 4


def test_the_header_time_is_local_like_the_pickers() -> None:
    when = datetime(2026, 3, 1, 9, 30, 5).astimezone()  # a local time, written as ISO with its UTC offset
    assert runs.local_time(when.isoformat()) == "2026-03-01 09:30:05"
    assert runs.local_time("") == "unknown time"


def test_downloads_of_a_run_directory_serve_its_files_byte_for_byte(tmp_path: Path) -> None:
    saved = make_run(tmp_path / "runs" / "20260101-000000-x", n_models=3, save=True)
    loaded = RankingResult.load(saved.run_dir)
    files = runs.downloads(loaded)
    assert [f.fmt for f in files] == ["csv", "json", "md", "html"]
    for item in files:
        assert item.data == (saved.run_dir / runs.REPORT_FILES[item.fmt]).read_bytes()


def test_downloads_of_an_upload_are_rendered_by_the_analyzers_writers(result: RankingResult) -> None:
    upload = RankingResult.from_bytes(json.dumps(result.to_dict()).encode())
    files = {f.fmt: f for f in runs.downloads(upload)}
    assert RankingResult.from_bytes(files["json"].data).to_dict() == result.to_dict()
    assert list(pd.read_csv(io.BytesIO(files["csv"].data))["model"]) == result.models
    assert b"<html" in files["html"].data.lower() and result.headline().encode() in files["md"].data


# ---------------------------------------------------------------------------------------- explain and table
@pytest.mark.parametrize("name", ["logme", "knn", "ncti", "sfda", "tmi", "ped", "alpha", "aggregate_score"])
def test_every_metric_is_explained_from_its_card(name: str) -> None:
    card = explain.explain(name)
    assert card.summary and card.direction and card.needs
    assert ("higher" in card.help.lower()) != ("lower is better" in card.help.lower())
    if name in ("logme", "knn", "ncti", "sfda"):  # the README's validation, from analyzer/metric_record.json
        assert "Measured weighted τ vs probe accuracy: notmnist" in card.help


def test_the_table_shows_ranking_csv_columns_each_with_help(result: RankingResult) -> None:
    frame, shown = table.display_table(result)
    csv = pd.read_csv(io.StringIO(ranking_table(result).to_csv(index=False)))
    assert list(frame.columns) == list(csv.columns)  # the dashboard's table is ranking.csv's
    assert {c.name for c in shown} <= set(frame.columns)
    assert [c.name for c in shown][:2] == ["rank", "name"] and all(c.pinned for c in shown[:2])
    assert all(c.help for c in shown)
    by_name = {c.name: c for c in shown}
    assert by_name["alpha"].label == "weighted alpha" and by_name["num_params"].format == "localized"


# ---------------------------------------------------------------------------------------------------- charts
def test_every_chart_keeps_the_ranking_order_and_one_colour_per_candidate(result: RankingResult) -> None:
    names, colours = charts.labels(result), charts.candidate_colors(result)
    order = [names[m] for m in result.models]
    starred = [m for m in result.models if names[m].startswith(charts.STAR)]
    assert starred == result.top_tie() and len(starred) < len(order)
    mean_rank = charts.mean_rank_chart(result)
    assert list(mean_rank.layout.yaxis.categoryarray)[::-1] == order
    assert len(mean_rank.data) == 2  # the bootstrap's rank intervals and the mean-rank dots
    for metric in ("logme", "knn", "sfda"):
        fig = charts.metric_chart(result, metric)
        assert [y.removesuffix(" ⚠") for y in fig.data[0].y] == order
        assert list(fig.data[0].marker.color) == [colours[m] for m in result.models]
    assert len(set(colours.values())) == len(colours)


def test_agreement_needs_three_candidates(result: RankingResult) -> None:
    two = make_run(n_models=2, seed=1)
    assert charts.agreement_heatmap(two) is None and two.mean_agreement() is None
    assert charts.agreement_heatmap(result) is not None


def test_truth_scatter_labels_points_and_stars_the_recommendation(result: RankingResult) -> None:
    fig = charts.truth_scatter(result, "logme")
    shown = list(fig.data[0].text)
    assert set(shown) == {result.display_names[m] for m in result.models}
    star = shown.index(result.display_names[result.top_tie()[0]])
    assert fig.data[0].marker.symbol[star] == "star"


def test_class_colours_do_not_depend_on_the_view() -> None:
    first = charts.class_colors(["0", "1", "2"])
    assert first["1"] == charts.class_colors(["0", "1", "2", "3"])["1"]


# -------------------------------------------------------------------------------------------------- spectrum
def test_spectrum_layers_keep_the_reports_flags_in_depth_order(result: RankingResult) -> None:
    model = spectrum.spectrum_models(result)[0]
    layers = spectrum.spectrum_layers(result, model)
    assert list(layers["depth"]) == list(range(len(layers)))
    assert list(layers["flag"]) == [x.flag for x in result.spectrum[model].layers]


def test_esd_histogram_is_a_density_on_log_bins() -> None:
    rng = np.random.default_rng(0)
    eig = np.concatenate([rng.pareto(2.5, 2000) + 1.0, [0.0, -1.0, np.nan]])
    edges, density = spectrum.esd_histogram(eig, bins=30)
    ratios = edges[1:] / edges[:-1]
    np.testing.assert_allclose(ratios, ratios[0])
    assert float(np.sum(density * np.diff(edges))) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="no positive eigenvalues"):
        spectrum.esd_histogram([0.0, -2.0])


def test_the_drawn_power_law_has_the_layers_exponent() -> None:
    centers = np.logspace(0, 3, 20)
    line = spectrum.power_law_line(centers, 5.0 * centers**-3.0, alpha=3.0)
    np.testing.assert_allclose(line, 5.0 * centers**-3.0, rtol=1e-9)
    fig = spectrum.esd_chart(np.random.default_rng(0).pareto(2.0, 500) + 1.0, 3.0, "t")
    assert len(fig.data) == 2 and "α = 3.00" in fig.data[1].name and fig.layout.xaxis.type == "log"


# ------------------------------------------------------------------------------------------------ features
def _clusters(n_per_class: int, n_classes: int, dim: int, spread: float, seed: int = 0) -> tuple:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), n_per_class)
    centers = rng.normal(scale=spread, size=(n_classes, dim))
    return (centers[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32), labels


def test_sampling_is_the_projects_per_class_cap() -> None:
    from analyzer.datasets.subsample import stratified_subsample

    labels = np.repeat(np.arange(4), [500, 300, 100, 5])
    idx = features.sample_indices(labels, 200, seed=3)
    np.testing.assert_array_equal(idx, stratified_subsample(labels, 50, 3))
    np.testing.assert_array_equal(features.sample_indices(labels[:50], 200), np.arange(50))


def test_the_confusions_accuracy_is_the_knn_metric_on_the_whole_run() -> None:
    import metrics

    x, y = _clusters(40, 5, 16, spread=1.0, seed=3)  # overlapping: some confusion
    conf = features.knn_confusion(x, y, k=20, n_total=len(y), table_knn=None)
    assert conf.accuracy == pytest.approx(metrics.compute("knn", x, y, k=20))
    assert conf.matrix.sum(axis=1) == pytest.approx(np.ones(5)) and "same computation" in conf.note
    sampled = features.knn_confusion(x, y, k=20, n_total=10 * len(y), table_knn=0.5)
    assert "sample of 200 of the 2,000" in sampled.note and "0.500" in sampled.note


def test_pca_and_tsne_separate_separated_classes() -> None:
    x, y = _clusters(40, 3, 64, spread=10.0)
    pca = features.project_2d(x, y, method="pca")
    centered = x - x.mean(axis=0)
    _, s, _ = np.linalg.svd(centered.astype(np.float64), full_matrices=False)
    assert pca.explained[0] == pytest.approx(s[0] ** 2 / np.sum(s**2), rel=1e-3)
    tsne = features.project_2d(x, y, method="tsne", tsne_iterations=300)
    assert features.knn_confusion(tsne.coords, y, k=5, n_total=len(y)).accuracy > 0.95
    with pytest.raises(ValueError, match="unknown projection method"):
        features.project_2d(x, y, method="umap")


def test_a_sample_is_read_from_the_feature_store_or_explains_how_to_get_it_back(tmp_path: Path) -> None:
    from analyzer.store import FeatureStore

    x, y = _clusters(200, 5, 8, spread=2.0)
    FeatureStore(tmp_path).put("s" * 64, features=x, labels=y, sample_ids=[str(i) for i in range(1000)])
    sample, labels, n_total = features.load_sample(tmp_path, "s" * 64, "m", max_points=100, seed=4)
    idx = features.sample_indices(y, 100, seed=4)
    assert n_total == 1000
    np.testing.assert_array_equal(sample, x[idx])
    np.testing.assert_array_equal(labels, y[idx])
    for key in (None, "0" * 64):
        with pytest.raises(features.FeaturesUnavailable) as info:
            features.load_sample(tmp_path, key, "m", max_points=10)
        assert info.value.fix


# ---------------------------------------------------------------------------------------------------- form
def test_parse_candidates_splits_commas_and_lines_and_drops_duplicates() -> None:
    text = "timm:a, timm:b\n\n  timm:a\n# a comment\ntorchscript:/x/y.pt"
    assert form.parse_candidates(text) == ["timm:a", "timm:b", "torchscript:/x/y.pt"]
    assert form.parse_candidates(" ,\n ") == []
    with pytest.raises(AnalyzerError, match="no candidate models given"):  # the request's rule
        form.start_ranking(Path("/nonexistent/cache"), data="sklearn:digits", candidates=" ,\n ")


def test_start_ranking_refuses_a_missing_dataset_before_running(tmp_path: Path) -> None:
    with pytest.raises(AnalyzerError, match="no dataset given"):
        form.start_ranking(tmp_path, data="  ", candidates="timm:resnet18")
    assert not any(tmp_path.iterdir())  # nothing opened, nothing written


def test_the_form_defaults_are_the_rankings_and_include_the_weight_spectrum() -> None:
    from analyzer import ranking

    assert form.default_metrics()[: len(ranking.DEFAULT_METRICS)] == list(ranking.DEFAULT_METRICS)
    assert "alpha" in form.default_metrics() and set(form.default_metrics()) <= set(form.available_metrics())


def test_progress_shows_the_rankings_own_counts_short_names_and_failures_in_red() -> None:
    from analyzer.ranking import ProgressEvent

    seen: list[form.Progress] = []
    tracker = form.CandidateProgress(["timm:a", "torchscript:/x/net.pt"], seen.append)
    assert [p.name for p in seen] == ["a", "net"] and all(p.text == "waiting" for p in seen)
    tracker.event(ProgressEvent("features", "timm:a", "[rank] features: timm:a", 1, 2))
    assert seen[-2] == form.Progress("stage:features", "features", 0.5, "features: 1 of 2")
    assert seen[-1].key == "timm:a" and seen[-1].fraction is None
    failed = "[rank]   failed: no weights"
    tracker.event(ProgressEvent("features", "torchscript:/x/net.pt", failed, 2, 2, error="no weights"))
    tracker.event(
        ProgressEvent("scores", "torchscript:/x/net.pt", "late event after the failure", 1, 4, unit="knn")
    )
    tracker.event(ProgressEvent("scores", "timm:elsewhere", "not one of ours", 2, 4, unit="knn"))
    assert seen[-1].failed and seen[-1].name == "net" and "[rank]" not in seen[-1].text
    tracker.event(ProgressEvent("bootstrap", "timm:a", "[rank] bootstrap knn x3: timm:a", 3, 6, unit="1-3"))
    assert seen[-2].key == "stage:bootstrap" and seen[-2].fraction == 0.5
    tracker.finish(make_run(n_models=2, with_failure=False))
    assert [p.text for p in seen[-2:]] == ["done", "done"]


def test_progress_on_a_cluster_names_the_node_of_each_unit_and_of_a_failure() -> None:
    from analyzer.ranking import ProgressEvent

    seen: list[form.Progress] = []
    tracker = form.CandidateProgress(["timm:a", "timm:b"], seen.append)
    tracker.event(ProgressEvent("features", "timm:a", "[rank] features: timm:a", 1, 2, node="10.0.0.7"))
    assert seen[-2] == form.Progress("stage:features", "features", 0.5, "features: 1 of 2 (last on 10.0.0.7)")
    assert seen[-1] == form.Progress("timm:a", "a", None, "features done on 10.0.0.7")
    tracker.event(
        ProgressEvent(
            "features", "timm:b", "[rank]   failed: CUDA oom", 2, 2, node="gpu-3", error="CUDA out of memory"
        )
    )
    assert seen[-1] == form.Progress("timm:b", "b", None, "failed on gpu-3", failed=True)
    tracker.finish(_with_failure("timm:b", "CUDA oom"))
    assert seen[-1] == form.Progress("timm:b", "b", None, "failed on gpu-3: CUDA oom", failed=True)
    assert seen[-2] == form.Progress("timm:a", "a", None, "done")


def _with_failure(model: str, error: str) -> object:
    """The one field :meth:`form.CandidateProgress.finish` reads off a result."""

    from analyzer.report_types import Failed

    return replace(make_run(n_models=2, with_failure=False), failed=[Failed(model=model, error=error)])


def test_the_form_builds_ranks_executor_table_and_refuses_an_address_without_ray() -> None:
    assert form.EXECUTORS[0] == "local"  # the default stays in process
    assert form.executor_settings("local", "  ") == {"kind": "local"}
    assert form.executor_settings("ray", "") == {"kind": "ray"}
    assert form.executor_settings("ray", " ray://head:10001 ") == {
        "kind": "ray",
        "address": "ray://head:10001",
    }
    ask = {"data": "sklearn:digits", "candidates": "timm:a"}
    with pytest.raises(AnalyzerError, match="executor is local") as err:  # the request's rule
        form.build_request("c", executor=form.executor_settings("local", "auto"), **ask)
    assert "ray" in str(err.value.fix)
    with pytest.raises(AnalyzerError, match="unknown executor"):
        form.build_request("c", executor=form.executor_settings("dask"), **ask)


def test_an_internal_failure_in_the_form_is_called_a_bug_and_a_users_mistake_is_kept() -> None:
    mistake = AnalyzerError("no dataset given", "enter a path")
    assert form.as_problem(mistake) is mistake
    bug = form.as_problem(KeyError("x"))
    assert "internal error while ranking: KeyError" in str(bug) and "ANALYZER_DEBUG=1" in str(bug.fix)
