"""report.html: one self-contained page (no network, no scripts): tables plus inline SVG plots.

Plots are drawn with matplotlib (a dependency of weightwatcher) and embedded as inline ``<svg>``, so the page
opens offline and in any browser: per-metric bar charts, the rank-agreement heatmap, the weight-spectrum
summary, and score-vs-truth scatter plots when ground truth is present.

Drawing the four plots is most of a cached run's time (seconds of matplotlib layout, plus importing it), so with a
``figure_cache`` folder each plot's SVG is kept under the SHA-256 of what it is drawn from (the result's sections
the plots read, this module's source and matplotlib's version): the same result renders to the same bytes, drawn
once. matplotlib is imported only when a plot has to be drawn.
"""

from __future__ import annotations

import hashlib
import html as _html
import io
import json
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from analyzer import cost_view
from analyzer.report_types import AGGREGATE, MIN_AGREEMENT_CANDIDATES
from analyzer.reports._format import (
    baseline_rows,
    candidate_rows,
    failure_where,
    fmt,
    metric_card_rows,
    notes,
    ranking_rows,
    spectrum_rows,
    validation_note,
    validation_rows,
)
from analyzer.result import RankingResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

#: The result's sections the plots read (display names derive from ranking, failed, skipped and spectrum).
_PLOTTED_SECTIONS = (
    "metrics",
    "ranking",
    "failed",
    "skipped",
    "agreement",
    "spectrum",
    "validation",
    "budget",
    "recommendation",
    "pareto",
)


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display on servers; the backend must be set before pyplot)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _figure_key(result: RankingResult, name: str) -> str:
    """SHA-256 of everything the plot ``name`` of ``result`` depends on: same key, same SVG bytes."""
    # the installed version, not matplotlib.__version__: a cache hit must not import matplotlib
    from importlib.metadata import version

    data = result.to_dict()
    inputs = {section: data.get(section) for section in _PLOTTED_SECTIONS}
    digest = hashlib.sha256()
    digest.update(json.dumps([name, version("matplotlib"), inputs], sort_keys=True).encode("utf-8"))
    digest.update(Path(__file__).read_bytes())
    digest.update(Path(cost_view.__file__).read_bytes())  # the Pareto chart is drawn there
    return digest.hexdigest()


def _cached_plot(
    draw: Callable[[RankingResult], str | None],
    result: RankingResult,
    figure_cache: str | os.PathLike[str] | None,
) -> str | None:
    """``draw(result)``, or its SVG remembered under ``figure_cache`` (None: always draw).

    A plot with nothing to show (``draw`` returns None) is remembered as the empty string.
    """
    if figure_cache is None:
        return draw(result)
    from analyzer.records import RecordCache

    cache = RecordCache(figure_cache)
    name = f"{draw.__name__}-{_figure_key(result, draw.__name__)}"
    svg = cache.get(name)
    if not isinstance(svg, str):
        svg = draw(result) or ""
        cache.put(name, svg)
    return svg or None


_STYLE = """
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3} td:first-child,td:nth-child(2){text-align:left}
.note{background:#fff8e1;border-left:4px solid #f0b400;padding:0.5em 1em}
figure{margin:1em 0} svg{max-width:100%;height:auto}
"""


def _svg(fig: Figure) -> str:
    import matplotlib

    buf = io.StringIO()
    # Fixed hash salt and no date: the same result renders to the same bytes.
    with matplotlib.rc_context({"svg.hashsalt": "analyzer", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", bbox_inches="tight", metadata={"Date": None})
    _pyplot().close(fig)
    text = buf.getvalue()
    return text[text.index("<svg") :]


def _table(header: list[str], rows: list[list[str]], empty: str = "(none)") -> str:
    if not rows:
        return f"<p>{_html.escape(empty)}</p>"
    head = "".join(f"<th>{_html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_html.escape(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def metric_bars(result: RankingResult) -> str | None:
    """One horizontal bar chart per scored metric (raw scores, best candidate on top)."""
    names = [n for n in result.metric_names() if any(e.scores.get(n) is not None for e in result.ranking)]
    if not names:
        return None
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = _pyplot().subplots(
        rows, cols, figsize=(4.2 * cols, 0.35 * len(result.ranking) * rows + 1.2 * rows)
    )
    axes = np.atleast_1d(axes).ravel()
    display = result.display_names
    models = [display[m] for m in result.models][::-1]
    for ax, name in zip(axes, names, strict=False):
        values = [e.scores.get(name) for e in result.ranking][::-1]
        y = np.arange(len(values))
        ax.barh(y, [np.nan if v is None else v for v in values], color="#4c72b0")
        ax.set_yticks(y, models, fontsize=7)
        arrow = "higher" if result.metric(name).higher_is_better else "lower"
        ax.set_title(f"{name} ({arrow} is better)", fontsize=9)
        ax.tick_params(axis="x", labelsize=7)
    for ax in axes[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    return _svg(fig)


def agreement_heatmap(result: RankingResult) -> str | None:
    """Kendall tau between every pair of metrics, baselines and the aggregate."""
    names = list(result.agreement.metrics)
    if len(names) < 2:
        return None
    matrix = np.array([[np.nan if v is None else v for v in row] for row in result.agreement.kendall_tau])
    fig, ax = _pyplot().subplots(figsize=(0.6 * len(names) + 2, 0.6 * len(names) + 1.5))
    image = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    for i in range(len(names)):
        for j in range(len(names)):
            if np.isfinite(matrix[i, j]):
                ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(image, ax=ax, label="Kendall tau")
    ax.set_title("rank agreement", fontsize=9)
    return _svg(fig)


def spectrum_plot(result: RankingResult) -> str | None:
    """Per-layer alpha of every model, with the well-trained 2-6 band shaded."""
    spectra = {m: s for m, s in result.spectrum.items() if s.layers}
    if not spectra:
        return None
    fig, ax = _pyplot().subplots(figsize=(8, 3.5))
    ax.axhspan(2, 6, color="#e0f0e0", label="well-trained range 2-6")
    display = result.display_names
    for model, s in spectra.items():
        ax.plot(
            [x.layer_id for x in s.layers],
            [np.nan if x.alpha is None else x.alpha for x in s.layers],
            marker="o",
            ms=3,
            label=display[model],
        )
    ax.set_xlabel("layer id")
    ax.set_ylabel("alpha")
    ax.legend(fontsize=6, loc="upper left", bbox_to_anchor=(1, 1))
    ax.set_title("weightwatcher per-layer alpha", fontsize=9)
    return _svg(fig)


def truth_scatter(result: RankingResult) -> str | None:
    """Score (oriented: higher is better) against true accuracy, one panel per metric and the aggregate."""
    if not result.validation:
        return None
    truth = result.validation.truth
    names = [r.metric for r in result.validation.rows if r.n_models >= 2]
    if not names:
        return None
    cols = min(4, len(names))
    rows = math.ceil(len(names) / cols)
    fig, axes = _pyplot().subplots(rows, cols, figsize=(3.2 * cols, 2.8 * rows))
    axes = np.atleast_1d(axes).ravel()
    for ax, name in zip(axes, names, strict=False):
        scores = result.oriented_scores(name)
        common = [m for m in result.models if m in scores and m in truth]
        ax.scatter([scores[m] for m in common], [truth[m] for m in common], s=14)
        row = result.validation.row(name)
        tau = None if row is None else row.weighted_tau
        label = "-(mean rank)" if name == AGGREGATE else name
        ax.set_title(f"{label}: weighted tau {fmt(tau, 2)}", fontsize=8)
        ax.set_ylabel("accuracy", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in axes[len(names) :]:
        ax.axis("off")
    fig.tight_layout()
    return _svg(fig)


def pareto_chart(result: RankingResult) -> str | None:
    """Aggregate mean rank against the Pareto axis's cost, the front highlighted, the budget's line drawn."""
    view = cost_view.pareto_view(result)
    return None if view is None else _svg(cost_view.pareto_figure(view, _pyplot()))


def render(result: RankingResult, figure_cache: str | os.PathLike[str] | None = None) -> str:
    """The report.html text of ``result``; ``figure_cache``: a folder remembering the plots (see the module)."""
    e = _html.escape
    d = result.dataset
    few = result.few_per_class_note()
    parts = [
        f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>Ranking: {e(result.name)}</title>",
        f"<style>{_STYLE}</style></head><body>",
        f"<h1>Backbone ranking: {e(result.name)}</h1>",
        f"<p class='note'><b>{e(result.headline())}</b></p>",
        *([f"<p class='note'>{e(few)}</p>"] if few else []),
        f"<p>Created {e(result.created)}. Dataset <code>{e(str(d.spec))}</code> (fingerprint "
        f"<code>{e(str(d.fingerprint))}</code>): {fmt(d.n_samples)} samples, "
        f"{fmt(d.n_classes)} classes.</p>",
        f"<p>Aggregate: {e(result.aggregate.description)}. Each cell is <i>score (rank)</i>.</p>",
        "<h2>Ranking</h2>",
        _table(*ranking_rows(result)),
        *(f"<p class='note'>{e(text)}</p>" for text in notes(result)),
    ]
    header, candidates = candidate_rows(result)
    if candidates:
        parts += ["<h2>Candidates</h2>", _table(header, candidates)]
    if cost_view.has_costs(result):
        parts += [
            "<h2>Cost and budget</h2>",
            *(f"<p class='note'>{e(t)}</p>" for t in cost_view.budget_lines(result)),
        ]
        parts += [
            f"<p>{e(cost_view.measured_on(result))}</p>",
            _table(cost_view.TABLE_HEADER, cost_view.table_rows(result)),
        ]
        chart = _cached_plot(pareto_chart, result, figure_cache)
        parts += [f"<figure>{chart}</figure>"] if chart else []
    parts += ["<h2>How to read each metric</h2>", _table(*metric_card_rows(result))]
    display = result.display_names
    if result.bootstrap:
        parts.append(f"<p class='note'>{e(result.bootstrap.statement)}</p>")
    parts.append("<h2>Which metrics agree with each position</h2><ul>")
    for row in result.ranking:
        parts.append(
            f"<li><b>{e(display[row.model])}</b> (rank {fmt(row.rank)}): agree "
            f"{e(', '.join(row.agree) or 'none')}; disagree {e(', '.join(row.disagree) or 'none')}</li>"
        )
    parts.append("</ul>")
    bars = _cached_plot(metric_bars, result, figure_cache)
    if bars:
        parts += [f"<h2>Scores per metric</h2><figure>{bars}</figure>"]
    few = f"(needs at least {MIN_AGREEMENT_CANDIDATES} ranked candidates)"
    parts += [
        "<h2>Agreement with the baselines (Kendall tau)</h2>",
        _table(*baseline_rows(result), empty=few),
    ]
    heat = (
        _cached_plot(agreement_heatmap, result, figure_cache)
        if len(result.ranking) >= MIN_AGREEMENT_CANDIDATES
        else None
    )
    if heat:
        parts += ["<h2>Rank agreement between metrics</h2>", f"<figure>{heat}</figure>"]
    parts += [
        "<h2>Weight spectrum (weightwatcher, data-free)</h2>",
        "<p>Lower alpha (within 2-6) means better trained; compare alpha_weighted across architectures. Layers "
        "below 2 are flagged <i>over-trained?</i>, above 6 <i>under-trained?</i>.</p>",
        _table(*spectrum_rows(result)),
    ]
    spec = _cached_plot(spectrum_plot, result, figure_cache)
    if spec:
        parts.append(f"<figure>{spec}</figure>")
    if result.validation:
        parts += ["<h2>Validation against ground truth</h2>", _table(*validation_rows(result))]
        note = validation_note(result)
        if note:
            parts.append(f"<p>{_html.escape(note)}</p>")
        scatter = _cached_plot(truth_scatter, result, figure_cache)
        if scatter:
            parts.append(f"<figure>{scatter}</figure>")
    if result.skipped:
        parts.append("<h2>Skipped metrics</h2>")
        parts.append(
            _table(
                ["model", "metric", "reason"],
                [[display[s.model], s.metric, s.reason] for s in result.skipped],
            )
        )
    if result.failed:
        parts.append("<h2>Failed candidates</h2>")
        parts.append(
            _table(["model", "error"], [[failure_where(f, display), f.error] for f in result.failed])
        )
    env = result.environment
    parts += [
        "<h2>Environment and timings</h2>",
        _table(["package", "version"], [[k, str(v)] for k, v in env.get("versions", {}).items()]),
        _table(["hardware", ""], [[k, str(v)] for k, v in env.get("hardware", {}).items()]),
        _table(["timing", "seconds"], [[k, fmt(v, 3)] for k, v in result.timings.items()]),
        "</body></html>",
    ]
    return "\n".join(parts)
