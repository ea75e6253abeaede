"""The Streamlit dashboard (app.py) driven by Streamlit's AppTest on fixture runs: no browser, no models."""

from __future__ import annotations

import json
import warnings
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from analyzer.dashboard import form, runs
from analyzer.reports import save
from analyzer.result import RankingResult
from tests.conftest import PROJECT_ROOT
from tests.fixtures.make_run import make_run

APP = PROJECT_ROOT / "app.py"
TIMEOUT = 120  # seconds per script run: generous for 2 shared cores; no assertion depends on it


def build_fixture_cache(cache: Path, *, with_features: bool = True) -> list[Path]:
    """Two runs under ``cache/runs`` (the newer one with 5 candidates, ground truth and spectra) and, when
    ``with_features``, a feature-store entry (500 samples, 10 clustered classes) for each candidate of the newer
    run under the key its report records. Returns the run directories, newest first.
    """
    older = make_run(cache / "runs" / "20260101-000000-older", n_models=3, seed=1, name="older", save=True)
    newer = make_run(cache / "runs" / "20260102-000000-demo", n_models=5, seed=0, name="demo", save=True)
    if with_features:
        from analyzer.store import FeatureStore

        store = FeatureStore(cache)
        rng = np.random.default_rng(0)
        labels = np.repeat(np.arange(10), 50)
        for row in newer.ranking:
            dim = row.feature_dim
            centers = rng.normal(scale=3.0, size=(10, dim))
            features = centers[labels] + rng.normal(size=(len(labels), dim))
            store.put(
                row.feature_key,
                features=features.astype(np.float32),
                labels=labels,
                sample_ids=[f"img_{i:04d}.png" for i in range(len(labels))],
                meta={"spec": row.model},
            )
    return [newer.run_dir, older.run_dir]


@pytest.fixture(scope="module")
def _shared_cache(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Path]]:
    # Built once per module: the tests below only read it (the form test writes to its own empty cache).
    cache = tmp_path_factory.mktemp("shared") / "cache"
    return cache, build_fixture_cache(cache)


@pytest.fixture()
def fixture_cache(_shared_cache: tuple[Path, list[Path]], monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The fixture runs (newest first), with $ANALYZER_CACHE_DIR pointing at their cache."""
    cache, runs = _shared_cache
    monkeypatch.setenv("ANALYZER_CACHE_DIR", str(cache))
    return runs


TABS = ("Ranking", "Metrics", "Cost", "Ground truth", "Weight spectrum", "Feature space", "New ranking")


def run_app(tab: str | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    if tab is not None:
        at.session_state["tab"] = tab
    return at.run()


def open_tab(at: AppTest, tab: str) -> AppTest:
    """Select a tab as a click would (the tabs keep their state; only the open one runs)."""
    at.session_state["tab"] = tab
    return at.run()


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def chart_titles(at: AppTest) -> list[str]:
    return [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]


def test_every_tab_renders_on_a_fixture_run(fixture_cache: list[Path]) -> None:
    result = RankingResult.load(fixture_cache[0])
    at = run_app()
    assert_clean(at)
    assert [t.label for t in at.tabs] == list(TABS)
    assert at.subheader[0].value == result.headline()
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Metrics ranking it first"].endswith(f"/ {len(result.aggregate_metrics)}")
    assert "Aggregate mean rank, best on top" in chart_titles(at)
    expected = {
        "Metrics": "Metric agreement (Kendall's τ)",
        "Ground truth": "aggregate: weighted τ = ",
        "Weight spectrum": "Per-layer alpha of ",
        "Feature space": "20-NN confusion, accuracy",
    }
    for tab, title in expected.items():
        open_tab(at, tab)
        assert_clean(at)
        assert not at.warning, (tab, [w.value for w in at.warning])  # the store has every candidate
        assert any(t.startswith(title) for t in chart_titles(at)), (tab, chart_titles(at))
    open_tab(at, "Ground truth")
    assert any("linear probe" in m.value for m in at.markdown)  # says what "accuracy" is
    assert any("regret" in s.value for s in [*at.success, *at.warning])  # a plain sentence on the pick


def test_the_table_has_ranking_csvs_columns_and_a_tooltip_on_every_header(fixture_cache: list[Path]) -> None:
    at = run_app()
    shown = at.dataframe[0]
    csv = pd.read_csv(fixture_cache[0] / "ranking.csv")
    assert list(shown.value.columns) == list(csv.columns)
    config = json.loads(shown.proto.columns)
    assert all(c.get("help") for name, c in config.items() if name != "_index")
    assert config["alpha"]["label"] == "weighted alpha" and "LogME" in config["logme"]["help"]
    assert config["name"]["pinned"] and config["num_params"]["type_config"]["format"] == "localized"
    assert shown.proto.placeholder == "—"


def test_a_tie_is_the_headline_and_two_candidates_say_agreement_needs_three(cache_dir: Path) -> None:
    result = make_run(n_models=2, seed=0, n_bootstrap=0, name="two", with_validation=False)
    top = result.ranking[0]  # make it an exact tie on the aggregate
    tied = [replace(entry, aggregate_score=top.aggregate_score, rank=1) for entry in result.ranking]
    result = save(replace(result, ranking=tied), cache_dir / "runs" / "20260101-000000-two")
    at = run_app()
    assert_clean(at)
    names = result.display_names
    assert at.subheader[0].value.startswith(f"Tied: {names[result.models[0]]} and {names[result.models[1]]}")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Lead over the runner-up"] == "tied" and metrics["Do the metrics agree?"].startswith(
        "needs"
    )
    open_tab(at, "Metrics")
    assert any("needs at least 3" in i.value for i in at.info)


def test_runs_are_offered_newest_first_and_switching_run_redraws(fixture_cache: list[Path]) -> None:
    at = run_app()
    picker = at.sidebar.selectbox(key="run_path")
    found = runs.list_runs(fixture_cache[0].parent.parent)
    assert [r.path for r in found] == fixture_cache and list(picker.options) == [r.label for r in found]
    picker.select_index(1).run()
    older = RankingResult.load(fixture_cache[1])
    assert list(at.dataframe[0].value["model"]) == older.models
    open_tab(at, "Feature space")  # the older run's features are not cached: Problem and Fix, no traceback
    assert not at.exception
    assert any("**Problem:**" in e.value and "**Fix:**" in e.value for e in at.error)


def test_downloads_produce_valid_report_files(
    fixture_cache: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    served: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def record(self, path_or_data, mimetype, kind, filename=None):  # noqa: ANN001 - streamlit's signature
        if filename:
            served[filename] = (
                path_or_data if isinstance(path_or_data, bytes) else Path(path_or_data).read_bytes()
            )
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", record)
    at = run_app()
    assert_clean(at)
    assert [b.label for b in at.get("download_button")] == [
        f"Download {f}" for f in ("CSV", "JSON", "Markdown", "HTML")
    ]
    by_suffix = {name.rsplit("-", 1)[-1]: data for name, data in served.items()}
    for file_name, data in by_suffix.items():
        assert data == (fixture_cache[0] / file_name).read_bytes()
    assert set(by_suffix) == {"ranking.csv", "report.json", "report.md", "report.html"}


def test_a_bad_upload_gives_problem_and_fix_and_keeps_the_run(fixture_cache: list[Path]) -> None:
    at = run_app()
    at.sidebar.file_uploader(key="upload").set_value(("broken.json", b"{not json", "application/json")).run()
    assert not at.exception
    assert any("not valid JSON" in e.value and "**Fix:**" in e.value for e in at.error)
    assert list(at.dataframe[0].value["model"])[0] == RankingResult.load(fixture_cache[0]).models[0]
    wrong = json.dumps({"schema_version": 99, "ranking": []}).encode()
    at.sidebar.file_uploader(key="upload").set_value(("future.json", wrong, "application/json")).run()
    assert any("schema_version 99" in e.value for e in at.error)


def test_an_uploaded_report_is_shown_with_rendered_downloads(cache_dir: Path) -> None:
    uploaded = make_run(n_models=4, seed=3, name="uploaded", with_validation=False)
    at = run_app()  # empty cache
    raw = json.dumps(uploaded.to_dict()).encode()
    at.sidebar.file_uploader(key="upload").set_value(("report.json", raw, "application/json")).run()
    assert_clean(at)
    assert at.subheader[0].value == uploaded.headline()
    assert len(at.get("download_button")) == 4
    open_tab(at, "Ground truth")
    assert any("no ground truth" in i.value for i in at.info)


@pytest.mark.parametrize("where", ["a file", "below a file"])
def test_an_unusable_cache_dir_is_a_problem_and_fix_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    blocker = tmp_path / "not_a_dir"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv("ANALYZER_CACHE_DIR", str(blocker if where == "a file" else blocker / "cache"))
    at = run_app()
    assert not at.exception, [
        e.value for e in at.exception
    ]  # resolve_cache_dir raises CacheError, not OSError
    assert any(
        "**Problem:**" in e.value and str(blocker) in e.value and "ANALYZER_CACHE_DIR" in e.value
        for e in at.error
    )


def test_an_empty_cache_explains_how_to_create_a_first_run(cache_dir: Path) -> None:
    at = run_app()
    assert_clean(at)
    assert any("No ranking runs yet" in i.value for i in at.info)
    text = "\n".join(m.value for m in at.markdown)
    assert "python -m analyzer rank" in text and "python -m analyzer demo" in text


def test_candidate_pickers_redraw_spectrum_and_feature_space(fixture_cache: list[Path]) -> None:
    result = RankingResult.load(fixture_cache[0])
    last = result.display_names[result.models[-1]]
    at = run_app("Weight spectrum")
    at.selectbox(key="spectrum_model").select(last)
    at.selectbox(key="esd_layer").select_index(2)
    at.run()
    assert_clean(at)
    titles = chart_titles(at)
    assert any(t.startswith(f"Per-layer alpha of {last}") for t in titles)
    assert any("layer2.conv" in t and "log-log" in t for t in titles)
    open_tab(at, "Feature space")
    at.selectbox(key="feature_model").select(last)
    at.run()
    assert_clean(at)
    assert any(t.startswith(f"PCA of {last}") for t in chart_titles(at))
    assert any("same computation as the table's kNN" in c.value for c in at.caption)


def test_the_form_offers_the_rankings_default_metrics(cache_dir: Path) -> None:
    at = run_app()
    assert at.multiselect(key="form_metrics").value == form.default_metrics()
    assert "alpha" in at.multiselect(key="form_metrics").value
    assert at.number_input(key="form_boot").value == form.default_bootstrap() == 200
    assert "LogME" in (at.multiselect(key="form_metrics").help or "")


def test_the_new_ranking_form_reports_input_errors_as_problem_and_fix(cache_dir: Path) -> None:
    at = run_app()
    at.text_input(key="form_data").input(str(cache_dir / "no_such_dataset"))
    at.text_area(key="form_models").input("")
    at.button[0].click().run()
    assert not at.exception
    assert any(
        "**Problem:** no candidate models given" in e.value and "**Fix:**" in e.value for e in at.error
    )
    assert not at.get("progress")  # no stale "waiting" bar under the error


def test_the_form_offers_the_executor_and_opens_the_chosen_one_as_rank_does(cache_dir: Path) -> None:
    import socket

    at = run_app()
    assert at.selectbox(key="form_executor").options == ["local", "ray"]
    assert at.selectbox(key="form_executor").value == "local"  # in process unless asked
    at.text_input(key="form_data").input("sklearn:digits")
    at.text_area(key="form_models").input("timm:resnet18")
    at.text_input(key="form_ray_address").input("auto")
    at.button[0].click().run()  # an address with the local executor is refused, not ignored
    assert any("executor is local" in e.value and "**Fix:**" in e.value for e in at.error)
    with socket.socket() as s:  # a free port, closed again: nothing listens there
        s.bind(("127.0.0.1", 0))
        address = f"ray://127.0.0.1:{s.getsockname()[1]}"
    at.selectbox(key="form_executor").set_value("ray")
    at.text_input(key="form_ray_address").input(address)
    at.button[0].click().run()
    # the form's choice reached Ray: it tried that address and says so, as `rank --executor ray` does (exit 2)
    assert not at.exception
    assert any("no Ray cluster answers" in e.value and "**Fix:**" in e.value for e in at.error)
    assert not runs.list_runs(cache_dir)  # nothing ran, nothing half-written


def _tiny_torchscript_models(folder: Path) -> list[str]:
    """Two tiny scripted conv nets with preprocessing sidecars: real candidates that need no download."""
    import torch
    from torch import nn

    specs = []
    folder.mkdir(parents=True, exist_ok=True)
    for i, width in enumerate((4, 8)):
        torch.manual_seed(i)
        net = nn.Sequential(
            nn.Conv2d(3, width, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten()
        )
        path = folder / f"net{i}.pt"
        with warnings.catch_warnings():
            warnings.simplefilter(
                "ignore", FutureWarning
            )  # torch.jit is deprecated but still what users have
            torch.jit.script(net.eval()).save(str(path))
        sidecar = {"input_size": [3, 16, 16], "mean": [0.5] * 3, "std": [0.5] * 3, "crop_pct": 1.0}
        path.with_suffix(".json").write_text(json.dumps(sidecar))
        specs.append(f"torchscript:{path}")
    return specs


def test_the_new_ranking_form_ranks_and_switches_to_the_new_run(cache_dir: Path, tmp_path: Path) -> None:
    specs = _tiny_torchscript_models(tmp_path / "models")
    missing = "torchscript:" + str(tmp_path / "missing.pt")
    at = run_app()
    at.text_input(key="form_data").input("sklearn:digits")
    at.text_area(key="form_models").input("\n".join([*specs, missing]))
    at.multiselect(key="form_metrics").set_value(["sfda", "tmi"])
    at.text_input(key="form_name").input("from-form")
    at.number_input(key="form_mpc").set_value(10)
    at.number_input(key="form_boot").set_value(3)
    at.button[0].click().run()
    assert_clean(at)
    assert any("Ranking finished" in s.value for s in at.success)
    found = runs.list_runs(cache_dir)
    assert len(found) == 1 and found[0].name == "from-form"
    # The new run is selected and its ranking tab is open; the missing model failed, the other two are ranked.
    assert at.sidebar.selectbox(key="run_path").value == found[0].label
    assert at.session_state["tab"] == "Ranking"
    assert sorted(at.dataframe[0].value["model"]) == sorted(specs)
    assert [f.model for f in RankingResult.load(found[0].path).failed] == [missing]
    # the run's features are where the feature view reads them
    open_tab(at, "Feature space")
    assert_clean(at)


def test_the_cost_view_shows_the_budget_the_pick_the_cost_table_and_the_pareto_chart(
    fixture_cache: list[Path],
) -> None:
    from analyzer import cost_view

    result = RankingResult.load(fixture_cache[0])
    at = open_tab(run_app(), "Cost")
    assert_clean(at)
    text = " ".join(m.value for m in at.markdown)
    assert "Budget: params <= 20M" in text and f"Pick: {result.recommendation['reason']}" in text
    table = at.dataframe[0].value
    assert list(table.columns) == cost_view.TABLE_HEADER and len(table) == len(result.ranking)
    over = [row.model for row in result.ranking if row.within_budget is False]
    assert over and list(table["within budget"]).count("over") == len(over)
    assert list(table["Pareto"]).count("front") == len(result.pareto["models"])
    assert any(t.startswith("Aggregate mean rank against latency_ms") for t in chart_titles(at))
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    front = next(trace for trace in chart["data"] if trace.get("name") == "Pareto front")
    assert len(front["x"]) == len(result.pareto["models"])
