"""The Streamlit dashboard (app.py) driven by Streamlit's AppTest on fixture runs: no browser, no models."""

from __future__ import annotations

import io
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest

from analyzer import dashboard as dash
from tests.fixtures.make_run import make_run

APP = Path(__file__).resolve().parent.parent / "app.py"
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
            dim = row["feature_dim"]
            centers = rng.normal(scale=3.0, size=(10, dim))
            features = centers[labels] + rng.normal(size=(len(labels), dim))
            store.put(
                row["feature_key"],
                features=features.astype(np.float32),
                labels=labels,
                sample_ids=[f"img_{i:04d}.png" for i in range(len(labels))],
                meta={"spec": row["model"]},
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


def run_app() -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=TIMEOUT)
    return at.run()


def assert_no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_every_section_renders_on_a_fixture_run(fixture_cache: list[Path]) -> None:
    at = run_app()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    report = dash.load_report(fixture_cache[0])
    best = report["ranking"][0]["model"]
    assert [t.label for t in at.tabs] == list(
        ("Ranking", "Metrics", "Ground truth", "Weight spectrum", "Feature space", "New ranking")
    )
    best_name = dash.display_names(report)[best]
    assert any(best_name in s.value for s in at.subheader), "the recommendation names the best candidate"
    labels = {m.label: m.value for m in at.metric}
    assert labels["Margin (mean rank)"] == f"{dash.recommendation(report).margin:.2f}"
    assert labels["Metrics ranking it first"].endswith(f"/ {len(dash.aggregate_metrics(report))}")
    # The newest run is the one shown; its table lists the candidates best first.
    table = at.dataframe[0].value
    assert list(table["model"]) == [row["model"] for row in report["ranking"]]
    assert list(table.columns[:2]) == ["rank", "name"] and table.columns[-1] == "model"  # short name first
    charts = at.get("plotly_chart")
    n_metrics = len([m for m in report["metrics"] if m["kind"] != "baseline"])
    # aggregate + one per metric + heatmap + scatter per scored metric + alpha + ESD + projection + confusion
    assert len(charts) >= 1 + n_metrics + 1 + n_metrics + 2 + 2
    assert not at.warning, [w.value for w in at.warning]  # the feature store has every candidate
    assert any("Validation" in m.value for m in at.markdown)
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in charts]
    assert any(t.startswith("aggregate: weighted τ = ") for t in titles)
    assert "Rank agreement between metrics (Kendall's τ)" in titles


def test_runs_are_offered_newest_first_and_switching_run_redraws(fixture_cache: list[Path]) -> None:
    at = run_app()
    picker = at.sidebar.selectbox(key="run_path")
    runs = dash.list_runs(fixture_cache[0].parent.parent)
    assert [r.path for r in runs] == fixture_cache
    assert list(picker.options) == [r.label for r in runs]
    picker.select_index(1).run()
    assert_no_exception(at)
    older = dash.load_report(fixture_cache[1])
    assert list(at.dataframe[0].value["model"]) == [row["model"] for row in older["ranking"]]
    # The older run's candidates have no cached features: a readable warning, not a traceback.
    assert any("Feature space unavailable" in w.value and "fix:" in w.value for w in at.warning)


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
    assert_no_exception(at)
    assert [b.label for b in at.get("download_button")] == [
        "Download CSV",
        "Download JSON",
        "Download Markdown",
        "Download HTML",
    ]
    run_dir = fixture_cache[0]
    report = dash.load_report(run_dir)
    models = [row["model"] for row in report["ranking"]]
    by_suffix = {name.rsplit("-", 1)[-1]: data for name, data in served.items()}
    assert set(by_suffix) == {"ranking.csv", "report.json", "report.md", "report.html"}
    csv = pd.read_csv(io.BytesIO(by_suffix["ranking.csv"]))
    assert list(csv["model"]) == models
    assert dash.read_report_bytes(by_suffix["report.json"])["ranking"] == report["ranking"]
    assert by_suffix["report.json"] == (run_dir / "report.json").read_bytes()
    markdown = by_suffix["report.md"].decode("utf-8")
    assert models[0] in markdown and "|" in markdown
    html = by_suffix["report.html"].decode("utf-8")
    assert "<html" in html.lower() and html.rstrip().lower().endswith("</html>") and models[0] in html


def test_a_bad_upload_gives_a_message_not_a_traceback(fixture_cache: list[Path]) -> None:
    at = run_app()
    at.sidebar.file_uploader(key="upload").set_value(("broken.json", b"{not json", "application/json")).run()
    assert_no_exception(at)
    assert any("not valid JSON" in e.value and "broken.json" in e.value for e in at.error)
    # The selected run is still drawn under the message.
    assert (
        list(at.dataframe[0].value["model"])[0] == dash.load_report(fixture_cache[0])["ranking"][0]["model"]
    )

    wrong = json.dumps({"schema_version": 99, "ranking": []}).encode()
    at.sidebar.file_uploader(key="upload").set_value(("future.json", wrong, "application/json")).run()
    assert_no_exception(at)
    assert any("schema_version 99" in e.value for e in at.error)


def test_an_uploaded_report_is_shown_with_rendered_downloads(cache_dir: Path, tmp_path: Path) -> None:
    uploaded = make_run(n_models=4, seed=3, name="uploaded", with_validation=False).to_dict()
    at = run_app()  # empty cache
    raw = json.dumps(uploaded).encode()
    at.sidebar.file_uploader(key="upload").set_value(("report.json", raw, "application/json")).run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    best_name = dash.display_names(uploaded)[uploaded["ranking"][0]["model"]]
    assert any(best_name in s.value for s in at.subheader)
    assert len(at.get("download_button")) == 4  # CSV/MD/HTML rendered by the analyzer's writers
    assert any("no ground truth" in i.value for i in at.info)


def test_an_empty_cache_explains_how_to_create_a_first_run(cache_dir: Path) -> None:
    at = run_app()
    assert_no_exception(at)
    assert any("No ranking runs yet" in i.value for i in at.info)
    text = "\n".join(m.value for m in at.markdown)
    assert "python -m analyzer rank" in text and "python -m analyzer demo" in text
    assert at.text_input(key="form_data") is not None  # the form to start one is there


def test_candidate_pickers_redraw_spectrum_and_feature_space(fixture_cache: list[Path]) -> None:
    at = run_app()
    report = dash.load_report(fixture_cache[0])
    last = dash.display_names(report)[report["ranking"][-1]["model"]]  # pickers offer the display names
    at.selectbox(key="spectrum_model").select(last)
    at.selectbox(key="esd_layer").select_index(2)
    at.selectbox(key="feature_model").select(last)
    at.radio(key="projection_method").set_value("t-SNE")
    at.run()
    assert_no_exception(at)
    assert not at.warning and not at.error
    titles = [json.loads(c.proto.spec)["layout"]["title"]["text"] for c in at.get("plotly_chart")]
    assert any(t.startswith(f"Per-layer alpha of {last}") for t in titles)
    assert any(t.startswith(f"t-SNE of {last}") for t in titles)
    assert any("layer2.conv" in t and "log-log" in t for t in titles)


def test_the_new_ranking_form_reports_input_errors_readably(cache_dir: Path) -> None:
    at = run_app()
    at.text_input(key="form_data").input(str(cache_dir / "no_such_dataset"))
    at.text_area(key="form_models").input("")
    at.button[0].click().run()
    assert_no_exception(at)
    assert any("no candidate models given" in e.value and "fix:" in e.value for e in at.error)


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


def test_the_new_ranking_form_ranks_and_shows_the_new_run(cache_dir: Path, tmp_path: Path) -> None:
    specs = _tiny_torchscript_models(tmp_path / "models")
    at = run_app()
    at.text_input(key="form_data").input("sklearn:digits")
    at.text_area(key="form_models").input("\n".join([*specs, "torchscript:" + str(tmp_path / "missing.pt")]))
    at.multiselect(key="form_metrics").set_value(["sfda", "tmi"])
    at.text_input(key="form_name").input("from-form")
    at.number_input(key="form_mpc").set_value(10)
    at.number_input(key="form_boot").set_value(3)
    at.button[0].click().run()
    assert_no_exception(at)
    assert not at.error, [e.value for e in at.error]
    assert any("Ranking finished" in s.value for s in at.success)
    runs = dash.list_runs(cache_dir)
    assert len(runs) == 1 and runs[0].name == "from-form"
    # The new run is selected and drawn; the missing model is reported, the other two are ranked.
    assert at.sidebar.selectbox(key="run_path").value == runs[0].label
    assert sorted(at.dataframe[0].value["model"]) == sorted(specs)
    report = dash.load_report(runs[0].path)
    assert [f["model"] for f in report["failed"]] == ["torchscript:" + str(tmp_path / "missing.pt")]


def test_a_run_started_from_the_dashboard_has_its_features_where_the_feature_view_reads(
    cache_dir: Path, tmp_path: Path
) -> None:
    specs = _tiny_torchscript_models(tmp_path / "models")
    run_dir = dash.start_ranking(
        cache_dir, data="sklearn:digits", candidates=specs, metrics=["sfda"], max_per_class=5, n_bootstrap=0
    )
    for row in dash.load_report(run_dir)["ranking"]:
        features, labels = dash.load_cached_features(cache_dir, row["feature_key"], row["model"])
        assert features.shape == (50, row["feature_dim"]) and len(labels) == 50
