"""The dashboard: ``.venv/bin/streamlit run app.py``.

Shows the runs under ``<cache>/runs/`` (``$ANALYZER_CACHE_DIR`` or ``data_cache/``) or an uploaded report.json
and starts rankings with the CLI's Ranker. Every view renders from :class:`analyzer.result.RankingResult`; the
pieces live in :mod:`analyzer.dashboard`. One function per section, cached loaders; only the open tab runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import streamlit as st

from analyzer.budget import PARETO_AXES
from analyzer.dashboard import charts, cost, features, form, runs, spectrum, summary, table
from analyzer.errors import AnalyzerError
from analyzer.explain import explain
from analyzer.markdown_text import escape_markdown
from analyzer.paths import CACHE_ENV, resolve_cache_dir
from analyzer.report_types import AGGREGATE, MIN_AGREEMENT_CANDIDATES, VALIDATION_COLUMNS
from analyzer.reports._format import VALIDATION_LABELS
from analyzer.result import RankingResult, ReportError

TAB_NAMES = ("Ranking", "Metrics", "Cost", "Ground truth", "Weight spectrum", "Feature space", "New ranking")
#: Rows read once per candidate from the feature store; the projection and the kNN confusion use this sample.
SAMPLE_POINTS = 4000
TSNE_POINTS = 1500
DATA_HINT = "path/to/image_folder, data.csv, data.npz or sklearn:digits"
SPECS_HINT = "timm:resnet18.a1_in1k\ntorchscript:models/net.pt"
DOWNLOAD_LABELS = {"csv": "CSV", "json": "JSON", "md": "Markdown", "html": "HTML"}


# ----------------------------------------------------------------------------------------------- cached loaders
@st.cache_data(show_spinner=False, max_entries=32)
def load_run(path: str, mtime: float) -> RankingResult:
    """A run's result; ``mtime`` is in the key so a rewritten report is read again."""
    return RankingResult.load(path)


@st.cache_resource(show_spinner="Reading cached features…", max_entries=4)
def feature_sample(cache_dir: str, feature_key: str, model: str) -> tuple[np.ndarray, np.ndarray, int]:
    """A stratified sample of a candidate's cached features (read-only, shared, never copied per rerun)."""
    return features.load_sample(cache_dir, feature_key, model, max_points=SAMPLE_POINTS)


# persist="disk": a t-SNE (tens of seconds on 2 cores) is computed once per candidate, even across restarts
@st.cache_data(show_spinner=False, max_entries=64, persist="disk")
def projection(cache_dir: str, feature_key: str, model: str, method: str) -> features.Projection:
    x, y, _ = feature_sample(cache_dir, feature_key, model)
    if method == "tsne" and len(y) > TSNE_POINTS:
        keep = features.sample_indices(y, TSNE_POINTS)
        x, y = x[keep], y[keep]
    return features.project_2d(x, y, method=method)


@st.cache_data(show_spinner="Counting nearest neighbours…", max_entries=64)
def confusion(
    cache_dir: str, feature_key: str, model: str, k: int, table_knn: float | None
) -> features.KnnConfusion:
    x, y, n_total = feature_sample(cache_dir, feature_key, model)
    return features.knn_confusion(x, y, k=k, n_total=n_total, table_knn=table_knn)


# --------------------------------------------------------------------------------------------------- sections
def show_problem(exc: AnalyzerError, what: str) -> None:
    """An error as "Problem" and "Fix" on separate lines."""
    text = f"**{what}**\n\n**Problem:** {escape_markdown(exc.message)}"  # a fix's `*` must not become italics
    st.error(text + (f"\n\n**Fix:** {escape_markdown(exc.fix)}" if exc.fix else ""))


def grid(figures: Sequence[tuple[str, Any, str | None]]) -> int:
    """Draw ``(key, figure or None, caption)`` two per row (a phone stacks each row, so the order holds)."""
    shown = [f for f in figures if f[1] is not None]
    for start in range(0, len(shown), 2):
        for col, (key, fig, caption) in zip(st.columns(2), shown[start : start + 2], strict=False):
            col.plotly_chart(fig, key=key)
            if caption:
                col.caption(caption)
    return len(shown)


def pick_run(cache_dir: Path) -> tuple[RankingResult | None, list[runs.RunInfo]]:
    """The sidebar: a run from the cache (newest first, unique labels) or an uploaded report.json."""
    st.sidebar.header("Run")
    st.sidebar.caption(f"Cache directory: `{cache_dir}` (set `{CACHE_ENV}` to use another)")
    found = runs.list_runs(cache_dir)
    by_label = {run.label: run for run in found}
    pending = st.session_state.pop(
        "show_run", None
    )  # set by the form; widget state must be set before drawing
    for run in found:
        if str(run.path) == pending:
            st.session_state["run_path"] = run.label
            st.session_state["tab"] = "Ranking"
    chosen = (
        st.sidebar.selectbox("Ranking run (newest first)", list(by_label), key="run_path") if found else None
    )
    upload = st.sidebar.file_uploader("…or open a report.json", type=["json"], key="upload")
    if upload is not None:
        try:
            return RankingResult.from_bytes(upload.getvalue(), f"the uploaded file {upload.name}"), found
        except ReportError as exc:
            show_problem(exc, "Cannot show the uploaded file.")
            if chosen is not None:
                st.caption("Showing the selected run from the cache instead.")
    if chosen is None:
        return None, found
    run = by_label[chosen]
    try:
        return load_run(str(run.path), run.mtime), found
    except ReportError as exc:
        show_problem(exc, f"Cannot show run {run.label}.")
        return None, found


def show_empty_cache(cache_dir: Path) -> None:
    st.info(
        f"No ranking runs yet under `{runs.runs_dir(cache_dir)}`. Create a first run, then reload this page:"
    )
    st.markdown(runs.FIRST_RUN_HELP.format(env=CACHE_ENV))


def show_headline(result: RankingResult) -> None:
    """Which backbone to fine-tune (or which are tied), the runner-up, and how sure the ranking is."""
    d = result.dataset
    st.caption(
        f"Run **{result.name or 'unnamed'}** · created {runs.local_time(result.created)} · dataset "
        f"`{d.spec or '?'}` ({'?' if d.n_samples is None else f'{d.n_samples:,}'} samples, "
        f"{'?' if d.n_classes is None else d.n_classes} classes)"
    )
    if not result.ranking:
        st.warning("This run ranked no candidate; see the failed candidates below.")
        return
    st.subheader(escape_markdown(result.headline()))
    few = result.few_per_class_note()
    if few:  # a warning only when the column to trust disagrees with the pick
        (st.info if result.few_per_class_agrees() else st.warning)(few)
    cols = st.columns(4)
    for col, figure in zip(cols, summary.headline_figures(result), strict=True):
        col.metric(figure.label, figure.value, help=figure.help)
    tied = result.top_tie()
    if result.bootstrap and result.bootstrap.statement:
        (st.warning if len(tied) > 1 else st.info)(escape_markdown(result.bootstrap.statement))


def show_ranking(result: RankingResult) -> None:
    """The table (ranking.csv's columns), the downloads, the mean-rank chart and how to read the columns."""
    frame, shown = table.display_table(result)
    config = {
        c.name: st.column_config.TextColumn(c.label, help=c.help, pinned=c.pinned)
        if c.format is None
        else st.column_config.NumberColumn(c.label, help=c.help, format=c.format, pinned=c.pinned)
        for c in shown
    }
    height: int | Literal["auto"] = 38 + 35 * len(frame) if len(frame) <= 20 else "auto"  # all rows up to 20
    order = [c.name for c in shown]
    st.dataframe(
        frame, hide_index=True, column_order=order, column_config=config, height=height, placeholder="—"
    )
    for warning in result.spectrum_warnings().values():
        st.warning(f"⚠ weighted alpha: {warning}.")
    cols = st.columns(4)
    for col, item in zip(cols, runs.downloads(result), strict=True):
        col.download_button(
            f"Download {DOWNLOAD_LABELS[item.fmt]}",
            item.data,
            file_name=item.file_name,
            mime=item.mime,
            key=f"dl_{item.fmt}",
        )
    fig = charts.mean_rank_chart(result)
    if fig is not None:
        st.plotly_chart(fig, key="aggregate_chart")
        grey = "; grey: where its rank falls in 95 % of bootstrap resamples" if result.bootstrap else ""
        st.caption(f"Dots: mean rank{grey}. Aggregate: " + result.aggregate.description + ".")
    with st.expander("How to read this table"):
        for name in ["aggregate_score", *result.metric_names(), *(["p_best"] if result.bootstrap else [])]:
            card = explain(name)
            st.markdown(f"**{card.label}** — {card.help}")
    if result.failed:
        with st.expander(f"{len(result.failed)} candidate(s) failed"):
            st.dataframe(pd.DataFrame([f.to_dict() for f in result.failed]), hide_index=True)
    if result.skipped:
        with st.expander(f"{len(result.skipped)} metric(s) skipped for some candidates"):
            st.dataframe(pd.DataFrame([s.to_dict() for s in result.skipped]), hide_index=True)


def show_metrics(result: RankingResult) -> None:
    """One chart per metric (same order and colours everywhere), then how much the metrics agree."""
    names = [n for n in result.metric_names() if n not in result.metric_names("baseline")]
    figures = [(f"metric_{n}", charts.metric_chart(result, n), explain(n).help) for n in names]
    if not grid(figures):
        st.info("No metric produced a score in this run.")
    heat = charts.agreement_heatmap(result)
    if heat is None:
        st.info(f"Agreement between metrics needs at least {MIN_AGREEMENT_CANDIDATES} ranked candidates.")
        return
    st.plotly_chart(heat, key="agreement_heatmap")
    st.markdown(
        "**Agreement with the simple baselines** (Kendall's τ; close to 1 means the metric adds little)"
    )
    frame = summary.baseline_frame(result)
    config = {c: st.column_config.NumberColumn(format="%.2f") for c in frame.columns if c != "metric"}
    st.dataframe(frame, hide_index=True, column_config=config, placeholder="—", key="baseline_table")


def show_cost(result: RankingResult) -> None:
    """The budget and the pick, the measured cost of each candidate and the Pareto chart."""
    text, frame, figure = cost.view(result)
    st.markdown(text)
    if frame is not None:
        st.dataframe(frame, hide_index=True, key="cost_table")
    if figure is not None:
        st.plotly_chart(figure, key="pareto_chart")


def show_ground_truth(result: RankingResult) -> None:
    """Would the recommendation have been right? Scores against the true accuracy, and the statistics."""
    if not result.validation:
        st.info(
            "This run has no ground truth. Add it with `python -m analyzer evaluate --report RUN/report.json "
            "--ground-truth truth.csv` (columns `model,accuracy`), or pass `--ground-truth` to `rank`."
        )
        return
    st.markdown(summary.TRUTH_EXPLAINED)
    verdict = summary.truth_verdict(result)
    if verdict is not None:
        (st.success if verdict[0] else st.warning)(verdict[1])
    panels = [AGGREGATE, *(n for n in result.metric_names() if n != "source_accuracy")]
    grid([(f"truth_{n}", charts.truth_scatter(result, n), None) for n in panels])
    labels = VALIDATION_LABELS
    frame = summary.validation_frame(result)
    config = {c: st.column_config.NumberColumn(labels.get(c, c), format="%.3f") for c in VALIDATION_COLUMNS}
    config["n_models"] = st.column_config.NumberColumn("candidates", format="%d")
    st.markdown(summary.VALIDATION_EXPLAINED)
    st.dataframe(frame, hide_index=True, column_config=config, placeholder="—", key="validation_table")


def show_spectrum(result: RankingResult) -> None:
    """Per-layer alpha of one candidate and one layer's eigenvalue density with the fitted power law."""
    models = spectrum.spectrum_models(result)
    if not models:
        st.info(
            "No weight-spectrum analysis in this run: rank with the `alpha` metric (a default) to get one."
        )
        return
    names = result.display_names
    by_name = {names[m]: m for m in models}
    model = by_name[st.selectbox("Candidate", list(by_name), key="spectrum_model")]
    entry = result.spectrum[model]
    means = (entry.alpha, entry.alpha_weighted, entry.log_spectral_norm, entry.stable_rank)
    labels = ("mean alpha", "weighted alpha", "log spectral norm", "stable rank")
    for col, value, label in zip(st.columns(4), means, labels, strict=True):
        col.metric(label, "—" if value is None else f"{value:.2f}")
    warning = result.spectrum_warnings().get(model)
    if warning:
        st.warning(f"⚠ {warning}.")
    layers = spectrum.spectrum_layers(result, model)
    if layers.empty:
        st.info(f"weightwatcher analysed no layer of {names[model]}.")
        return
    st.plotly_chart(spectrum.alpha_chart(layers, f"Per-layer alpha of {names[model]}"), key="alpha_chart")
    esd = entry.esd
    if not esd:
        st.caption("The report stores no eigenvalues for this candidate.")
        return
    layer_names = dict(zip(layers["layer_id"], layers["name"], strict=True))
    choices = {f"{lid}: {layer_names.get(str(lid), lid)}": str(lid) for lid in esd}
    layer = choices[st.selectbox("Layer for the eigenvalue density", list(choices), key="esd_layer")]
    row = layers[layers["layer_id"] == layer]
    alpha = float(row["alpha"].iloc[0]) if len(row) else None
    title = f"Eigenvalues of {layer_names.get(layer, layer)} (log-log)"
    try:
        st.plotly_chart(spectrum.esd_chart(esd[layer], alpha, title), key="esd_chart")
    except ValueError as exc:
        st.warning(escape_markdown(str(exc)))


def show_feature_space(result: RankingResult, cache_dir: Path) -> None:
    """A candidate's cached features in 2-D (classes in fixed colours) and which classes its neighbours confuse."""
    keys = {e.model: e.feature_key for e in result.ranking}
    names = result.display_names
    cols = st.columns([3, 2])
    by_name = {names[m]: m for m in keys}
    model = by_name[cols[0].selectbox("Candidate", list(by_name), key="feature_model")]
    method = cols[1].radio("Projection", ["PCA", "t-SNE"], horizontal=True, key="projection_method")
    key = (str(cache_dir), keys[model] or "", model)
    k = features.knn_k(result)
    row = result.row(model)
    table_knn = None if row is None else row.scores.get("knn")
    try:
        with st.spinner(
            f"Computing {method} of {names[model]} (t-SNE takes up to a minute, once per candidate)…"
        ):
            proj = projection(*key, method.lower().replace("-", ""))
        conf = confusion(*key, k, table_knn)
    except AnalyzerError as exc:
        show_problem(exc, "Feature space unavailable.")
        return
    class_names = features.class_names_for(proj.labels, result.dataset)
    scatter, heat = charts.feature_figures(proj, conf, class_names, method, names[model])
    st.plotly_chart(scatter, key="projection_chart")
    st.plotly_chart(heat, key="confusion_chart")
    st.caption(conf.note + ".")


def new_ranking_form(cache_dir: Path) -> None:
    """Start a ranking with the Ranker the CLI uses; one bar per candidate; show the run when it is done."""
    with st.form("new_ranking"):
        data = st.text_input("Dataset", placeholder=DATA_HINT, key="form_data")
        models = st.text_area(
            "Candidates (one spec per line or comma-separated)", placeholder=SPECS_HINT, key="form_models"
        )
        options = form.available_metrics()
        metric_help = "\n".join(f"- **{m}**: {explain(m).summary}" for m in options)
        metrics = st.multiselect(
            "Metrics (defaults as `rank`)",
            options,
            default=form.default_metrics(),
            key="form_metrics",
            help=metric_help,
        )
        cols = st.columns(3)
        name = cols[0].text_input("Run name", value="dashboard", key="form_name")
        max_per_class = int(
            cols[1].number_input("Max samples per class (0 = all)", 0, 1_000_000, 0, key="form_mpc")
        )
        n_bootstrap = int(
            cols[2].number_input("Bootstrap resamples", 0, 2000, form.default_bootstrap(), key="form_boot")
        )
        limits = st.columns(
            5
        )  # the cost budget (0 = no limit) and the Pareto axis, as `rank --max-params ...`
        budget = {
            k: limits[i].number_input(f"{label} (0 = none)", 0.0, key=f"form_{k}")
            for i, (k, label) in enumerate(form.BUDGET_INPUTS)
        }
        axis = limits[4].selectbox("Pareto axis", PARETO_AXES, key="form_pareto_axis")
        run_on = st.columns(2)  # where the work runs, as `rank --executor ... --ray-address ...`
        kind = run_on[0].selectbox("Executor", form.EXECUTORS, key="form_executor", help=form.EXECUTOR_HELP)
        address = run_on[1].text_input("Ray address (empty = start one here)", key="form_ray_address")
        submitted = st.form_submit_button("Rank candidates", type="primary")
    if not submitted:
        return
    slots: dict[str, Any] = {}

    def on_progress(p: form.Progress) -> None:
        slot = slots.setdefault(p.key, st.empty())
        if p.failed:
            slot.error(
                f"**{escape_markdown(p.name)}**: {escape_markdown(p.text)}"
            )  # a red box, not a blue bar
        elif p.fraction is not None:
            slot.progress(p.fraction, text=p.text)  # a stage's bar: done / total as the ranking counts them
        else:
            slot.caption(f"**{escape_markdown(p.name)}**: {escape_markdown(p.text)}")

    try:
        run_dir = form.start_ranking(
            cache_dir,
            data=data,
            candidates=models,
            metrics=metrics,
            name=name,
            max_per_class=max_per_class or None,
            n_bootstrap=n_bootstrap,
            progress=on_progress,
            executor=form.executor_settings(kind, address),
            budget=budget,
            pareto_axis=axis,
        )
    except Exception as exc:  # noqa: BLE001 - the user gets a message, never a traceback
        for slot in slots.values():
            slot.empty()  # no stale "waiting" bar under the error
        show_problem(form.as_problem(exc), "The ranking could not run.")  # internal: says it is a bug
        return
    st.session_state["show_run"] = str(run_dir)
    st.session_state["flash"] = f"Ranking finished: {run_dir.name}"
    st.rerun()


def main() -> None:
    st.set_page_config(page_title="Backbone ranking", page_icon="📊", layout="wide")
    st.title("Which backbone should I fine-tune?")
    if "flash" in st.session_state:
        st.success(st.session_state.pop("flash"))
    try:
        cache_dir = resolve_cache_dir()
    except (
        AnalyzerError
    ) as exc:  # CacheError: a file, below a file, not writable (message names $ANALYZER_CACHE_DIR)
        show_problem(exc, f"Cannot use the cache directory; set {CACHE_ENV} to a writable directory.")
        return
    result, found = pick_run(cache_dir)
    if result is None:
        if not found:
            show_empty_cache(cache_dir)
        st.header("New ranking")
        new_ranking_form(cache_dir)
        return
    show_headline(result)
    tabs = dict(zip(TAB_NAMES, st.tabs(list(TAB_NAMES), key="tab", on_change="rerun"), strict=True))
    sections = {
        "Ranking": lambda: show_ranking(result),
        "Metrics": lambda: show_metrics(result),
        "Cost": lambda: show_cost(result),
        "Ground truth": lambda: show_ground_truth(result),
        "Weight spectrum": lambda: show_spectrum(result),
        "Feature space": lambda: show_feature_space(result, cache_dir),
        "New ranking": lambda: new_ranking_form(cache_dir),
    }
    for label, tab in tabs.items():
        if tab.open:  # only the selected tab runs (t-SNE and kNN are computed when asked for)
            with tab:
                sections[label]()


main()
