"""The dashboard: ``streamlit run app.py``.

Reads ranking runs from ``<cache>/runs/`` (the cache is ``$ANALYZER_CACHE_DIR`` or ``data_cache/``, as for the
CLI) or an uploaded report.json, and draws them: the recommendation, the ranking table with report downloads,
per-metric charts and their agreement, ground truth, weight spectra and the feature space of cached features.
It can start a new ranking through the same :class:`analyzer.ranking.Ranker` the CLI uses. All data handling
lives in :mod:`analyzer.dashboard` (tested without Streamlit); this file only lays out and draws.

Nothing here extracts features: the feature-space view reads the feature store, and says how to get an entry
back when it is gone. Heavy work (reading a report, projecting and kNN on features) is cached with
``st.cache_data`` keyed by the run's path and report mtime, so switching tabs or candidates is instant.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import streamlit as st

from analyzer import dashboard as dash
from analyzer.errors import AnalyzerError
from analyzer.paths import CACHE_ENV, resolve_cache_dir

#: Points drawn in the feature projection (sampled per class); t-SNE is slower, so it gets fewer.
PROJECTION_POINTS = 3000
TSNE_POINTS = 1500
#: Samples in the leave-one-out kNN confusion (O(n²·D) on the sample).
KNN_POINTS = 4000
#: Rows read once per candidate from the feature store and kept (per class, in proportion) for every view.
SAMPLE_POINTS = 20_000
TAB_NAMES = ("Ranking", "Metrics", "Ground truth", "Weight spectrum", "Feature space", "New ranking")


# ------------------------------------------------------------------------------------------ caches


@st.cache_data(show_spinner=False, max_entries=32)
def cached_report(path: str, mtime: float) -> dict[str, Any]:
    """A run's checked report.json; ``mtime`` is in the key so a rewritten report is read again."""
    return dash.load_report(path)


# A resource cache, not a data cache: the sample (up to 20 000 x D float32) is read-only and shared, so it is
# neither pickled nor copied on every access.
@st.cache_resource(show_spinner="Reading cached features…", max_entries=4)
def cached_feature_sample(
    cache_dir: str, run_key: str, feature_key: str, model: str
) -> tuple[np.ndarray, np.ndarray, int]:
    """A stratified sample (at most :data:`SAMPLE_POINTS` rows) of a candidate's cached features, its labels, and
    the full sample count. Reading the store is the slow part on large runs, so it happens once per candidate;
    the views below (any method, point count or k) work on this sample and are cached by run and parameters.
    """
    return dash.load_cached_sample(cache_dir, feature_key, model, max_points=SAMPLE_POINTS)


@st.cache_data(show_spinner="Projecting features…", max_entries=64)
def cached_projection(
    cache_dir: str, run_key: str, feature_key: str, model: str, method: str, max_points: int
) -> tuple[dash.Projection, int]:
    """2-D projection of the candidate's sample; also returns the full sample count."""
    features, labels, n_total = cached_feature_sample(cache_dir, run_key, feature_key, model)
    return dash.project_2d(features, labels, method=method, max_points=max_points), n_total


@st.cache_data(show_spinner="Computing the kNN confusion…", max_entries=64)
def cached_confusion(cache_dir: str, run_key: str, feature_key: str, model: str, k: int) -> dash.KnnConfusion:
    """Leave-one-out kNN confusion on (at most :data:`KNN_POINTS` of) the candidate's sample."""
    features, labels, _ = cached_feature_sample(cache_dir, run_key, feature_key, model)
    return dash.knn_confusion(features, labels, k=k, max_points=KNN_POINTS)


# ---------------------------------------------------------------------------------------- sections


def pick_report(cache_dir: Path) -> tuple[dict[str, Any] | None, Path | None, str, list[dash.RunInfo]]:
    """The sidebar run picker: returns (report, run directory or None for an upload, cache key, runs)."""
    st.sidebar.header("Run")
    st.sidebar.caption(f"Cache directory: `{cache_dir}` (set `{CACHE_ENV}` to use another)")
    runs = dash.list_runs(cache_dir)
    # Options are the displayed labels (unique: they come from the unique directory names), mapped back here.
    by_label = {run.label: run for run in runs}
    # A ranking started from the form asks, through session state, to be shown once it is done; a widget's
    # state can only be set before the widget is drawn in a run, hence here.
    pending = st.session_state.pop("show_run", None)
    for run in runs:
        if str(run.path) == pending:
            st.session_state["run_path"] = run.label
    chosen = None
    if runs:
        chosen = st.sidebar.selectbox("Ranking run (newest first)", options=list(by_label), key="run_path")
    upload = st.sidebar.file_uploader("…or open a report.json", type=["json"], key="upload")
    if upload is not None:
        raw = upload.getvalue()
        try:
            report = dash.read_report_bytes(raw, f"the uploaded file {upload.name}")
        except AnalyzerError as exc:
            st.error(f"Cannot show the uploaded file: {exc}")
            if chosen is not None:
                st.caption("Showing the selected run from the cache instead.")
        else:
            return report, None, "upload:" + hashlib.sha256(raw).hexdigest(), runs
    if chosen is None:
        return None, None, "", runs
    run = by_label[chosen]
    try:
        report = cached_report(str(run.path), run.mtime)
    except AnalyzerError as exc:
        st.error(f"Cannot show run {run.label}: {exc}")
        return None, None, "", runs
    return report, run.path, f"{run.path}:{run.mtime}", runs


def show_empty_cache(cache_dir: Path) -> None:
    """What a first-time user sees: how to make a first run."""
    st.info(
        f"No ranking runs yet under `{dash.runs_dir(cache_dir)}`. Create a first run in one of these ways, "
        "then reload this page:"
    )
    st.markdown(
        "1. **Offline demo** (no downloads): `python -m analyzer demo`\n"
        "2. **Your data and candidates**:\n"
        "   ```\n"
        "   python -m analyzer rank --data path/to/image_folder \\\n"
        "       --models timm:resnet18.a1_in1k,timm:efficientnet_b0.ra_in1k\n"
        "   ```\n"
        "3. **From here**: fill in the *New ranking* form below.\n\n"
        f"Runs elsewhere? Start the dashboard with `{CACHE_ENV}=/path/to/cache streamlit run app.py`, "
        "or open a `report.json` from the sidebar."
    )


def show_recommendation(report: dict[str, Any]) -> None:
    """The headline: best candidate, margin over the runner-up, agreement between the metrics."""
    rec = dash.recommendation(report)
    dataset = report.get("dataset") or {}
    st.caption(
        f"Run **{report.get('name') or 'unnamed'}** · created {report.get('created') or 'unknown'} · dataset "
        f"`{dataset.get('spec', '?')}` ({dataset.get('n_samples', '?')} samples, "
        f"{dataset.get('n_classes', '?')} classes)"
    )
    if rec.best is None:
        st.warning("This run ranked no candidate; see the failures below.")
        return
    names = dash.display_names(report)
    st.subheader(f"Recommendation: `{names.get(rec.best, rec.best)}`")
    if names.get(rec.best, rec.best) != rec.best:
        st.caption(f"Spec: `{rec.best}`")
    cols = st.columns(4)
    margin = "—" if rec.margin is None else f"{rec.margin:.2f}"
    cols[0].metric(
        "Margin (mean rank)",
        margin,
        help=(
            f"Runner-up `{names.get(rec.runner_up, rec.runner_up)}`. Difference in aggregate mean rank (lower is better) between the "
            "runner-up and the best candidate; 0 means tied."
        ),
    )
    tau = "—" if rec.mean_tau is None else f"{rec.mean_tau:.2f}"
    cols[1].metric(
        "Metric agreement",
        f"{rec.agreement_level} (τ̄ {tau})",
        help="Mean Kendall's tau between the aggregate metrics' rankings: 1 = they order candidates identically.",
    )
    cols[2].metric(
        "Metrics ranking it first",
        f"{len(rec.agreeing)} / {rec.n_metrics}",
        help=", ".join(rec.agreeing) or "none",
    )
    p_best = "—" if rec.p_best is None else f"{rec.p_best:.0%}"
    interval = (
        f" Its 95% rank interval: {rec.rank_interval[0]}–{rec.rank_interval[1]}." if rec.rank_interval else ""
    )
    cols[3].metric(
        "P(best) in bootstrap",
        p_best,
        help="Share of bootstrap resamples in which it ranks first." + interval,
    )
    if rec.statement:
        (st.warning if len(rec.tied_top) > 1 else st.info)(rec.statement)


def show_ranking(report: dict[str, Any], run_dir: Path | None) -> None:
    """The sortable table, the report downloads and the aggregate chart."""
    table = dash.ranking_table(report)
    config: dict[str, Any] = {
        "aggregate rank": st.column_config.NumberColumn(format="%.2f", help="mean rank, lower is better"),
        "extraction s": st.column_config.NumberColumn(format="%.1f"),
        "source acc": st.column_config.NumberColumn(format="%.3f"),
        "P(best)": st.column_config.NumberColumn(format="%.2f"),
    }
    for name in dash.metric_names(report):
        config[name] = st.column_config.NumberColumn(format="%.4g")
    st.dataframe(table, hide_index=True, column_config=config, key="ranking_table")
    st.caption("Click a column header to sort. " + ((report.get("aggregate") or {}).get("description") or ""))

    files, missing = dash.downloads(report, run_dir)
    cols = st.columns(max(len(files), 1))
    labels = {"csv": "CSV", "json": "JSON", "md": "Markdown", "html": "HTML"}
    for col, item in zip(cols, files, strict=False):
        col.download_button(
            f"Download {labels[item.fmt]}",
            item.data,
            file_name=item.file_name,
            mime=item.mime,
            key=f"dl_{item.fmt}",
        )
    for reason in missing:
        st.caption(f"Not available: {reason}")

    agg = table.dropna(subset=["aggregate rank"])
    if not agg.empty:
        fig = px.bar(
            agg,
            x="aggregate rank",
            y="name",
            orientation="h",
            title="Aggregate mean rank (lower is better)",
            hover_data={"rank": True, "P(best)": ":.2f", "model": True},
        )
        fig.update_yaxes(categoryorder="array", categoryarray=list(agg["name"])[::-1], title=None)
        fig.update_layout(height=max(260, 28 * len(agg) + 120), margin={"l": 10, "r": 10, "t": 50, "b": 10})
        st.plotly_chart(fig, key="aggregate_chart")

    if report.get("failed"):
        with st.expander(f"{len(report['failed'])} candidate(s) failed"):
            st.dataframe(pd.DataFrame(report["failed"]), hide_index=True)
    if report.get("skipped"):
        with st.expander(f"{len(report['skipped'])} metric(s) skipped for some candidates"):
            st.dataframe(pd.DataFrame(report["skipped"]), hide_index=True)


def show_metrics(report: dict[str, Any]) -> None:
    """One bar chart per metric and the Kendall-tau heatmap between metric rankings."""
    names = [m["name"] for m in report.get("metrics", []) if m.get("kind") != "baseline"]
    names = [n for n in names if not dash.metric_scores(report, n).empty]
    if not names:
        st.info("No metric produced a score in this run.")
        return
    cols = st.columns(2)
    for i, name in enumerate(names):
        frame = dash.metric_scores(report, name)
        direction = "higher" if dash.higher_is_better(report, name) else "lower"
        fig = px.bar(
            frame,
            x="score",
            y="name",
            orientation="h",
            title=f"{name} ({direction} is better)",
            hover_data=["model"],
        )
        fig.update_yaxes(categoryorder="array", categoryarray=list(frame["name"])[::-1], title=None)
        fig.update_layout(height=max(240, 24 * len(frame) + 110), margin={"l": 10, "r": 10, "t": 50, "b": 10})
        cols[i % 2].plotly_chart(fig, key=f"metric_{name}")

    agreement = report.get("agreement") or {}
    matrix = dash.agreement_matrix(report, agreement.get("metrics") or names)
    fig = go.Figure(
        go.Heatmap(
            z=matrix.to_numpy(dtype=float),
            x=list(matrix.columns),
            y=list(matrix.index),
            zmin=-1,
            zmax=1,
            colorscale="RdBu",
            text=np.round(matrix.to_numpy(dtype=float), 2),
            texttemplate="%{text}",
            colorbar={"title": "τ"},
        )
    )
    fig.update_layout(title="Rank agreement between metrics (Kendall's τ)", height=120 + 40 * len(matrix))
    fig.update_yaxes(autorange="reversed")
    st.plotly_chart(fig, key="agreement_heatmap")

    baseline = report.get("baseline_agreement") or {}
    if baseline:
        st.markdown(
            "**Agreement with the simple baselines** (Kendall's τ; high means the metric adds little)"
        )
        st.dataframe(pd.DataFrame(baseline).T.rename_axis("metric"), key="baseline_table")


def show_ground_truth(report: dict[str, Any]) -> None:
    """Metric score against true accuracy, and the validation statistics."""
    truth = dash.ground_truth(report)
    if truth is None or truth.empty:
        st.info(
            "This run has no ground truth. Add it with `python -m analyzer evaluate --report RUN/report.json "
            "--ground-truth truth.csv` (columns `model,accuracy`), or pass `--ground-truth` to `rank`."
        )
        return
    names = [
        m["name"]
        for m in report.get("metrics", [])
        if m["name"] in truth.columns and truth[m["name"]].notna().sum() >= 2
    ]
    # The aggregate first (its validation row is called "aggregate"; lower mean rank is better), then each metric.
    panels = [(name, name) for name in names]
    if truth["aggregate rank"].notna().sum() >= 2:
        panels.insert(0, ("aggregate rank", "aggregate"))
    cols = st.columns(2)
    for i, (column, name) in enumerate(panels):
        wt = dash.weighted_tau(report, name)
        title = f"{name}: weighted τ = {wt:.2f}" if wt is not None else f"{name}: weighted τ n/a"
        fig = px.scatter(truth, x=column, y="accuracy", hover_name="name", hover_data=["model"], title=title)
        fig.update_traces(marker={"size": 11})
        fig.update_layout(height=320, margin={"l": 10, "r": 10, "t": 50, "b": 10})
        cols[i % 2].plotly_chart(fig, key=f"truth_{name}")
    table = dash.validation_table(report)
    if table is not None:
        st.markdown(
            "**Validation against ground truth** (weighted τ as the transferability papers compute it)"
        )
        st.dataframe(table, hide_index=True, key="validation_table")


def show_spectrum(report: dict[str, Any]) -> None:
    """Per-layer alpha of a chosen candidate with the 2–6 band, and a layer's eigenvalue histogram."""
    models = dash.spectrum_models(report)
    if not models:
        st.info("No weight-spectrum analysis in this run: add the `alpha` metric to the ranking to get one.")
        return
    names = dash.display_names(report)
    # the options are the unique display names themselves (a format_func would not survive reruns in AppTest)
    by_name = {names.get(m, m): m for m in models}
    model = by_name[st.selectbox("Candidate", list(by_name), key="spectrum_model")]
    entry = report["spectrum"][model]
    cols = st.columns(4)
    for col, key in zip(cols, ("alpha", "alpha_weighted", "log_spectral_norm", "stable_rank"), strict=True):
        value = dash.to_float(entry.get(key))
        col.metric(key, "—" if math.isnan(value) else f"{value:.3f}")
    layers = dash.spectrum_layers(report, model)
    if layers.empty:
        st.info(f"weightwatcher analysed no layer of {model}.")
    else:
        lo, hi = dash.ALPHA_BAND
        fig = px.scatter(
            layers,
            x="depth",
            y="alpha",
            color="flag",
            hover_data=["name", "alpha_weighted", "stable_rank"],
            title=f"Per-layer alpha of {names.get(model, model)}",
            color_discrete_map={"ok": "#2a9d8f", "over-trained?": "#e76f51", "under-trained?": "#f4a261"},
        )
        fig.add_trace(
            go.Scatter(
                x=layers["depth"], y=layers["alpha"], mode="lines", line={"color": "#999"}, showlegend=False
            )
        )
        fig.add_hrect(
            y0=lo,
            y1=hi,
            fillcolor="green",
            opacity=0.08,
            line_width=0,
            annotation_text=f"well trained {lo:g}–{hi:g}",
        )
        fig.update_layout(height=360, xaxis_title="layer depth (analysed layers, input → output)")
        st.plotly_chart(fig, key="alpha_chart")
        with st.expander("Per-layer table"):
            st.dataframe(layers, hide_index=True)
    if entry.get("skipped_layers"):
        st.caption(f"{len(entry['skipped_layers'])} layer(s) skipped by weightwatcher.")

    layer_ids = dash.esd_layers(report, model)
    if not layer_ids:
        st.caption("The report stores no eigenvalues for this candidate.")
        return
    names = dict(zip(layers["layer_id"], layers["name"], strict=True)) if not layers.empty else {}
    choices = {f"{lid}: {names.get(lid, lid)}": lid for lid in layer_ids}
    layer = choices[st.selectbox("Layer for the eigenvalue histogram", list(choices), key="esd_layer")]
    try:
        edges, density = dash.esd_histogram(entry["esd"][layer])
    except ValueError as exc:
        st.warning(str(exc))
        return
    centers = np.sqrt(edges[:-1] * edges[1:])
    keep = density > 0  # empty bins cannot sit on a log axis
    fig = go.Figure(go.Scatter(x=centers[keep], y=density[keep], mode="markers+lines", name="ESD"))
    fig.update_layout(
        title=f"Eigenvalue density of layer {names.get(layer, layer)} (log-log)",
        xaxis={"type": "log", "title": "eigenvalue λ"},
        yaxis={"type": "log", "title": "density"},
        height=340,
    )
    st.plotly_chart(fig, key="esd_chart")


def show_feature_space(report: dict[str, Any], cache_dir: Path, run_key: str) -> None:
    """2-D projection of a candidate's cached features and its kNN confusion between classes."""
    candidates = {row["model"]: row.get("feature_key") for row in report.get("ranking", [])}
    if not candidates:
        st.info("No candidate to show.")
        return
    cols = st.columns([3, 1, 1, 1])
    display = dash.display_names(report)
    by_name = {display.get(m, m): m for m in candidates}
    model = by_name[cols[0].selectbox("Candidate", list(by_name), key="feature_model")]
    method = cols[1].radio("Projection", ["PCA", "t-SNE"], horizontal=True, key="projection_method")
    default = TSNE_POINTS if method == "t-SNE" else PROJECTION_POINTS
    max_points = int(cols[2].number_input("Points", 100, 20_000, default, step=500, key=f"points_{method}"))
    k = int(cols[3].number_input("k (kNN)", 1, 50, 5, key="knn_k"))
    try:
        key = (str(cache_dir), run_key, candidates[model] or "", model)
        projection, n_total = cached_projection(*key, method.lower().replace("-", ""), max_points)
        confusion = cached_confusion(*key, k)
    except AnalyzerError as exc:
        st.warning(f"Feature space unavailable: {exc}")
        return
    except ValueError as exc:
        st.error(f"Cannot draw the feature space of {model}: {exc}")
        return
    names = dash.class_names_for(projection.labels, report.get("dataset") or {})
    frame = pd.DataFrame(
        {
            "x": projection.coords[:, 0],
            "y": projection.coords[:, 1],
            "label": [names[v] for v in projection.labels.tolist()],
        }
    )
    title = f"{method} of {display.get(model, model)}: {len(frame)} of {n_total} samples"
    if projection.explained:
        title += f" (explained variance {projection.explained[0]:.0%} + {projection.explained[1]:.0%})"
    axes = ("PC1", "PC2") if projection.method == "pca" else ("t-SNE 1", "t-SNE 2")
    fig = px.scatter(
        frame, x="x", y="y", color="label", title=title, opacity=0.75, labels={"x": axes[0], "y": axes[1]}
    )
    fig.update_traces(marker={"size": 5})
    fig.update_layout(height=480, legend_title_text="class")
    st.plotly_chart(fig, key="projection_chart")

    labels = [names.get(c, str(c)) for c in confusion.classes.tolist()]
    heat = go.Figure(
        go.Heatmap(
            z=confusion.matrix,
            x=labels,
            y=labels,
            zmin=0,
            zmax=1,
            colorscale="Blues",
            customdata=confusion.counts,
            hovertemplate="true %{y} → kNN %{x}: %{z:.0%} (%{customdata})<extra></extra>",
        )
    )
    heat.update_layout(
        title=(
            f"Leave-one-out {confusion.k}-NN confusion on {confusion.n_used} samples "
            f"(accuracy {confusion.accuracy:.1%}); rows: true class"
        ),
        xaxis_title="predicted by neighbours",
        yaxis_title="true class",
        height=200 + 22 * len(labels),
    )
    heat.update_yaxes(autorange="reversed")
    st.plotly_chart(heat, key="confusion_chart")


def new_ranking_form(cache_dir: Path) -> None:
    """Start a ranking with the same Ranker the CLI uses; one progress bar per candidate."""
    try:
        from analyzer import ranking
    except ImportError as exc:
        st.warning(f"The ranking engine cannot be imported ({exc}); reinstall with scripts/setup.sh.")
        return
    options = dash.available_metrics()
    defaults = [m for m in getattr(ranking, "DEFAULT_METRICS", ()) if m in options]
    with st.form("new_ranking"):
        data = st.text_input(
            "Dataset",
            placeholder="path/to/image_folder, data.csv, data.npz or sklearn:digits",
            key="form_data",
        )
        models = st.text_area(
            "Candidates (one model spec per line or comma-separated)",
            placeholder="timm:resnet18.a1_in1k\ntorchscript:models/net.pt",
            key="form_models",
        )
        metrics = st.multiselect("Metrics", options, default=defaults, key="form_metrics")
        cols = st.columns(3)
        name = cols[0].text_input("Run name", value="dashboard", key="form_name")
        max_per_class = int(
            cols[1].number_input("Max samples per class (0 = all)", 0, 1_000_000, 0, key="form_mpc")
        )
        n_bootstrap = int(cols[2].number_input("Bootstrap resamples", 0, 2000, 100, key="form_boot"))
        submitted = st.form_submit_button("Rank candidates", type="primary")
    if not submitted:
        return
    status = st.empty()
    bars: dict[str, Any] = {}

    def on_progress(model: str, fraction: float, message: str = "") -> None:
        if model not in bars:
            bars[model] = st.progress(0.0, text=model)
        bars[model].progress(min(max(float(fraction), 0.0), 1.0), text=f"{model}: {message}".rstrip(": "))

    try:
        run_dir = dash.start_ranking(
            cache_dir,
            data=data,
            candidates=models,
            metrics=metrics,
            name=name,
            max_per_class=max_per_class or None,
            n_bootstrap=n_bootstrap,
            progress=on_progress,
        )
    except (AnalyzerError, ValueError) as exc:
        status.error(f"The ranking could not run: {exc}")
        return
    except Exception as exc:  # noqa: BLE001 - the user gets a message, never a traceback
        status.error(
            f"Internal error while ranking: {type(exc).__name__}: {exc}. This is a bug in the analyzer; "
            "run the same ranking with `ANALYZER_DEBUG=1 python -m analyzer rank ...` for the traceback."
        )
        return
    # Show the new run: the picker selects it on the rerun (see pick_report) and the message survives it.
    st.session_state["show_run"] = str(run_dir)
    st.session_state["flash"] = f"Ranking finished: {run_dir}"
    st.rerun()


def main() -> None:
    st.set_page_config(page_title="Backbone ranking", page_icon="📊", layout="wide")
    st.title("Which backbone should I fine-tune?")
    if "flash" in st.session_state:
        st.success(st.session_state.pop("flash"))
    try:
        cache_dir = resolve_cache_dir()
    except OSError as exc:
        st.error(f"Cannot use the cache directory ({exc}); set {CACHE_ENV} to a writable directory.")
        return
    report, run_dir, run_key, runs = pick_report(cache_dir)
    if report is None:
        if not runs:
            show_empty_cache(cache_dir)
        st.header("New ranking")
        new_ranking_form(cache_dir)
        return
    show_recommendation(report)
    tabs = dict(zip(TAB_NAMES, st.tabs(list(TAB_NAMES)), strict=True))
    with tabs["Ranking"]:
        show_ranking(report, run_dir)
    with tabs["Metrics"]:
        show_metrics(report)
    with tabs["Ground truth"]:
        show_ground_truth(report)
    with tabs["Weight spectrum"]:
        show_spectrum(report)
    with tabs["Feature space"]:
        show_feature_space(report, cache_dir, run_key)
    with tabs["New ranking"]:
        new_ranking_form(cache_dir)


main()
