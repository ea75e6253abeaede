"""Pure data helpers behind the Streamlit dashboard (``app.py``); testable without Streamlit.

Everything here reads what the ranking wrote (``report.json`` and its sibling files under
``<cache>/runs/<YYYYmmdd-HHMMSS>-<name>/``) or what the feature store holds; nothing extracts features or loads
a model. Reports are handled as the plain ``report.json`` dict (``RankingResult.to_dict()``, schema in
DESIGN.md) so that a report uploaded from another machine, or written by an older version, is shown the same
way as a local run.

Conventions used throughout:
- ``aggregate_score`` is a mean rank: lower is better; ``rank`` 1 is the best candidate.
- ``metric_ranks`` are per-metric ranks (1 = best for that metric, whatever its ``higher_is_better``).
- Kendall's tau is in [-1, 1]; 1 means two metrics order the candidates identically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from analyzer.errors import AnalyzerError, CacheError

#: report.json schema versions this dashboard can draw.
SUPPORTED_SCHEMA_VERSIONS = (1,)
RUNS_DIRNAME = "runs"
#: The files a run directory holds, by download format.
REPORT_FILES = {"csv": "ranking.csv", "json": "report.json", "md": "report.md", "html": "report.html"}
MIME_TYPES = {"csv": "text/csv", "json": "application/json", "md": "text/markdown", "html": "text/html"}
#: weightwatcher's well-trained range for a layer's power-law alpha (outside it: over- or under-trained?).
ALPHA_BAND = (2.0, 6.0)
_RUN_DIR_RE = re.compile(r"^(\d{8}-\d{6})(?:-(.*))?$")


class ReportError(AnalyzerError):
    """A report.json that cannot be read or does not follow the schema."""


class FeaturesUnavailable(CacheError):
    """The cached features of a candidate cannot be shown (no key recorded, entry pruned, store missing)."""


# --------------------------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class RunInfo:
    """One run directory under ``<cache>/runs/``, found without reading its (possibly large) report.json.

    ``started`` is parsed from the ``YYYYmmdd-HHMMSS`` directory prefix (None when the directory does not follow
    the convention, e.g. a run written with ``--out`` and copied in); ``mtime`` is report.json's modification
    time in seconds since the epoch, which also keys the dashboard's caches.
    """

    path: Path
    name: str
    started: datetime | None
    mtime: float

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILES["json"]

    @property
    def label(self) -> str:
        """What the run picker shows: start time and run name."""
        when = self.started.strftime("%Y-%m-%d %H:%M:%S") if self.started else "unknown time"
        return f"{when} · {self.name}"


def runs_dir(cache_dir: str | os.PathLike[str]) -> Path:
    """``<cache>/runs``: where ``rank`` writes a run when no ``--out`` is given."""
    return Path(cache_dir) / RUNS_DIRNAME


def list_runs(cache_dir: str | os.PathLike[str]) -> list[RunInfo]:
    """The runs under ``<cache>/runs/``, newest first.

    A run is a directory holding ``report.json`` (written last and atomically by the ranking, so a directory
    without one is a run still in progress or an interrupted one, and is left out). Order: the timestamp in
    the directory name, then report.json's mtime, newest first; runs without a parsable timestamp go by mtime.
    """
    root = runs_dir(cache_dir)
    if not root.is_dir():
        return []
    runs: list[RunInfo] = []
    for child in root.iterdir():
        report = child / REPORT_FILES["json"]
        if not child.is_dir() or not report.is_file():
            continue
        match = _RUN_DIR_RE.match(child.name)
        started = None
        name = child.name
        if match:
            try:
                started = datetime.strptime(match.group(1), "%Y%m%d-%H%M%S")
                name = match.group(2) or child.name
            except ValueError:
                started = None
        runs.append(RunInfo(path=child, name=name, started=started, mtime=report.stat().st_mtime))

    def key(run: RunInfo) -> tuple[float, float, str]:
        started = run.started.timestamp() if run.started else run.mtime
        return (started, run.mtime, run.path.name)

    return sorted(runs, key=key, reverse=True)


# ------------------------------------------------------------------------------------------ reports


def parse_report(data: Any, source: str = "report.json") -> dict[str, Any]:
    """Check a decoded report.json against the schema and return a normalised copy.

    Required: a dict with a supported ``schema_version``, a ``ranking`` list whose entries have ``model``,
    ``rank`` and ``scores``. Optional sections missing from older or hand-made reports are filled with empty
    values (``[]``, ``{}`` or ``None``) so the dashboard never has to guess. Raises :class:`ReportError`
    naming ``source``, the problem and the fix.
    """
    fix = "pick a report.json written by `python -m analyzer rank` (it is in the run's output directory)"
    if not isinstance(data, dict):
        raise ReportError(f"{source} is not a ranking report: its top level is not a JSON object", fix)
    version = data.get("schema_version")
    if version is None:
        raise ReportError(f"{source} is not a ranking report: it has no 'schema_version' field", fix)
    if version not in SUPPORTED_SCHEMA_VERSIONS:
        raise ReportError(
            f"{source} has schema_version {version!r}; this dashboard reads versions "
            f"{', '.join(map(str, SUPPORTED_SCHEMA_VERSIONS))}",
            "open it with the analyzer version that wrote it, or re-run the ranking with this version",
        )
    ranking = data.get("ranking")
    if not isinstance(ranking, list):
        raise ReportError(f"{source} has no 'ranking' list", fix)
    for i, row in enumerate(ranking):
        if not isinstance(row, dict) or not {"model", "rank", "scores"} <= row.keys():
            raise ReportError(f"{source}: ranking entry {i} lacks one of 'model', 'rank', 'scores'", fix)
        if not isinstance(row["scores"], dict):
            raise ReportError(
                f"{source}: ranking entry {i} ('{row['model']}') has 'scores' that is not an object", fix
            )

    report = dict(data)
    for key, default in (
        ("name", ""),
        ("created", None),
        ("dataset", {}),
        ("config", {}),
        ("metrics", []),
        ("aggregate", {}),
        ("skipped", []),
        ("failed", []),
        ("bootstrap", None),
        ("agreement", None),
        ("baseline_agreement", {}),
        ("spectrum", {}),
        ("validation", None),
        ("environment", {}),
        ("timings", {}),
    ):
        if report.get(key) is None:
            report[key] = default
    report["ranking"] = sorted(
        (dict(row) for row in ranking), key=lambda row: to_float(row.get("rank"), math.inf)
    )
    known = {m.get("name") for m in report["metrics"] if isinstance(m, dict)}
    # A metric that only appears in the scores (hand-made reports) is still drawn, as higher-is-better.
    extra = [m for m in _score_names(report["ranking"]) if m not in known]
    report["metrics"] = [m for m in report["metrics"] if isinstance(m, dict) and "name" in m] + [
        {"name": m, "params": {}, "higher_is_better": True, "kind": "label", "in_aggregate": False}
        for m in extra
    ]
    return report


def read_report_bytes(raw: bytes, source: str = "the uploaded file") -> dict[str, Any]:
    """Decode and check report.json bytes (an upload). Raises :class:`ReportError` on anything unreadable."""
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ReportError(
            f"{source} is not UTF-8 text ({exc.reason} at byte {exc.start})",
            "upload the report.json file itself",
        ) from exc
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
            "upload the report.json that `python -m analyzer rank` wrote, unmodified",
        ) from exc
    return parse_report(data, source)


def load_report(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check a run's report.json; ``path`` is the run directory or the file itself."""
    path = Path(path)
    file = path / REPORT_FILES["json"] if path.is_dir() else path
    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ReportError(
            f"cannot read {file}: {exc.strerror or exc}",
            "check that the run directory exists and is readable",
        ) from exc
    return read_report_bytes(raw, str(file))


def metric_names(report: Mapping[str, Any]) -> list[str]:
    """Every metric in the report, in the order the report lists them."""
    return [m["name"] for m in report.get("metrics", [])]


def aggregate_metrics(report: Mapping[str, Any]) -> list[str]:
    """The metrics whose mean rank is the aggregate (falls back to every metric when the report omits it)."""
    names = (report.get("aggregate") or {}).get("metrics")
    if names:
        return list(names)
    flagged = [m["name"] for m in report.get("metrics", []) if m.get("in_aggregate")]
    return flagged or metric_names(report)


def _score_names(ranking: Iterable[Mapping[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in ranking:
        for name in row.get("scores") or {}:
            seen.setdefault(name, None)
    return list(seen)


def to_float(value: Any, default: float = math.nan) -> float:
    """A JSON number as float; None, NaN-strings and non-numbers as ``default``."""
    if isinstance(value, bool) or value is None:
        return default
    try:
        out = float(value)
    except (TypeError, ValueError):
        return default
    return out if math.isfinite(out) else default


# ------------------------------------------------------------------------------------ ranking table


def display_names(report: Mapping[str, Any]) -> dict[str, str]:
    """``{model spec: short unique name}`` for every candidate of the report (ranked, failed, with a spectrum):
    what tables, charts and pickers show; the full spec stays in the table's last column."""
    from analyzer.naming import report_display_names

    return report_display_names(report)


def ranking_table(report: Mapping[str, Any]) -> pd.DataFrame:
    """The ranking as a DataFrame, best first: one row per candidate.

    Columns: ``rank``, ``name`` (the short display name), ``aggregate rank`` (mean rank over the aggregate
    metrics; lower is better), then for each metric ``<metric>`` (score) and ``<metric> rank``, then ``params``,
    ``feature dim``, ``extraction s`` (seconds), ``source acc``, ``P(best)`` (bootstrap), ``rank interval`` and
    ``model`` (the full spec). The baselines (``kind == "baseline"``: parameter count, source accuracy) appear
    once, as ``params`` and ``source acc``. Missing values are NaN (``<NA>`` for integer columns) so the table
    sorts numerically.
    """
    names = [m["name"] for m in report.get("metrics", []) if m.get("kind") != "baseline"]
    display = display_names(report)
    rows = []
    for entry in report.get("ranking", []):
        row: dict[str, Any] = {
            "rank": entry.get("rank"),
            "name": display.get(str(entry.get("model")), entry.get("model")),
            "model": entry.get("model"),
            "aggregate rank": to_float(entry.get("aggregate_score")),
        }
        scores = entry.get("scores") or {}
        ranks = entry.get("metric_ranks") or {}
        for name in names:
            row[name] = to_float(scores.get(name))
            row[f"{name} rank"] = ranks.get(name)
        interval = entry.get("rank_interval")
        row.update(
            {
                "params": entry.get("num_params"),
                "feature dim": entry.get("feature_dim"),
                "extraction s": to_float(entry.get("extraction_seconds")),
                "source acc": to_float(entry.get("source_accuracy")),
                "P(best)": to_float(entry.get("p_best")),
                "rank interval": f"{interval[0]}–{interval[1]}" if interval else None,
            }
        )
        rows.append(row)
    columns = ["rank", "name", "aggregate rank"]
    for name in names:
        columns += [name, f"{name} rank"]
    columns += ["params", "feature dim", "extraction s", "source acc", "P(best)", "rank interval", "model"]
    frame = pd.DataFrame(rows, columns=columns)
    for col in ["rank", "params", "feature dim"] + [f"{n} rank" for n in names]:  # sortable ints with gaps
        frame[col] = pd.array(pd.to_numeric(frame[col], errors="coerce"), dtype="Int64")
    return frame


def ranking_csv(report: Mapping[str, Any]) -> bytes:
    """The ranking table as CSV bytes (for an uploaded report, which comes without its ranking.csv)."""
    buffer = io.StringIO()
    ranking_table(report).to_csv(buffer, index=False, quoting=csv.QUOTE_MINIMAL)
    return buffer.getvalue().encode("utf-8")


@dataclass(frozen=True)
class Download:
    """One download button's payload: ``data`` is the exact bytes served as ``file_name``."""

    fmt: str
    file_name: str
    data: bytes
    mime: str


def report_renderers() -> dict[str, Callable[[Mapping[str, Any]], str]]:
    """The analyzer's own report writers by download format, taking a report dict (empty if not importable).

    Used for an uploaded report, which arrives without the files a run directory holds.
    """
    try:
        from analyzer.reports import WRITERS
        from analyzer.result import RankingResult
    except ImportError:
        return {}
    by_file = {file_name: fmt for fmt, file_name in REPORT_FILES.items()}
    out: dict[str, Callable[[Mapping[str, Any]], str]] = {}
    for file_name, render in WRITERS.items():
        if file_name in by_file:
            out[by_file[file_name]] = lambda report, render=render: render(
                RankingResult.from_dict(dict(report))
            )
    return out


def downloads(
    report: Mapping[str, Any],
    run_dir: str | os.PathLike[str] | None = None,
    renderers: Mapping[str, Callable[[Mapping[str, Any]], str | bytes]] | None = None,
) -> tuple[list[Download], list[str]]:
    """The report files the dashboard offers for download, and why any format is missing.

    For a run directory the files the ranking wrote are served byte for byte. Otherwise (an uploaded report,
    or a run missing a file) each format is rendered from the report with ``renderers`` (``{fmt: f}``,
    ``f(report_dict) -> text``; default :func:`report_renderers`, the analyzer's writers); without a renderer
    JSON is the report itself and CSV the :func:`ranking_table`, while Markdown and HTML are listed as missing.
    """
    if renderers is None:
        renderers = report_renderers()
    stem = _safe_stem(str(report.get("name") or "ranking"))
    found: list[Download] = []
    missing: list[str] = []
    for fmt, file_name in REPORT_FILES.items():
        data: bytes | None = None
        if run_dir is not None and (Path(run_dir) / file_name).is_file():
            data = (Path(run_dir) / file_name).read_bytes()
        elif fmt in renderers:
            try:
                text = renderers[fmt](report)
            except (AnalyzerError, ValueError, KeyError, TypeError) as exc:
                missing.append(f"{fmt}: the report writer could not render this report ({exc})")
                continue
            data = text.encode("utf-8") if isinstance(text, str) else text
        elif fmt == "json":
            data = json.dumps(report, indent=2, allow_nan=False, default=_json_default).encode("utf-8")
        elif fmt == "csv":
            data = ranking_csv(report)
        if data is None:
            missing.append(f"{fmt}: no report writer for {file_name} is installed")
            continue
        found.append(Download(fmt, f"{stem}-{file_name}", data, MIME_TYPES[fmt]))
    return found, missing


def _safe_stem(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "ranking"


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# ---------------------------------------------------------------------------------- recommendation


@dataclass(frozen=True)
class Recommendation:
    """The headline: which candidate to fine-tune and how sure the ranking is.

    ``margin`` is the runner-up's aggregate rank minus the best's (mean-rank units; > 0 means the best is
    ahead, 0 a tie). ``agreeing`` are the aggregate metrics that rank the best candidate first.
    ``mean_tau`` is the mean pairwise Kendall's tau between the aggregate metrics' rankings (1 = all agree).
    """

    best: str | None
    runner_up: str | None
    best_score: float | None
    margin: float | None
    agreeing: list[str]
    n_metrics: int
    mean_tau: float | None
    p_best: float | None = None
    rank_interval: list[int] | None = None
    tied_top: list[str] = field(default_factory=list)
    statement: str | None = None

    @property
    def agreement_level(self) -> str:
        """'strong' (mean tau >= 0.7), 'moderate' (>= 0.4), 'weak', or 'unknown' (fewer than 2 metrics)."""
        if self.mean_tau is None:
            return "unknown"
        if self.mean_tau >= 0.7:
            return "strong"
        return "moderate" if self.mean_tau >= 0.4 else "weak"


def recommendation(report: Mapping[str, Any]) -> Recommendation:
    """Summarise the ranking's top: best candidate, margin over the runner-up, metric agreement."""
    ranking = report.get("ranking", [])
    used = aggregate_metrics(report)
    if not ranking:
        return Recommendation(None, None, None, None, [], len(used), None)
    best = ranking[0]
    runner = ranking[1] if len(ranking) > 1 else None
    best_score = to_float(best.get("aggregate_score"))
    margin = None
    if runner is not None:
        diff = to_float(runner.get("aggregate_score")) - best_score
        margin = None if math.isnan(diff) else diff
    ranks = best.get("metric_ranks") or {}
    agreeing = [m for m in used if ranks.get(m) == 1]
    matrix = agreement_matrix(report, used)
    tau = None
    if len(matrix) >= 2:
        values = matrix.to_numpy(dtype=float)[np.triu_indices(len(matrix), k=1)]
        values = values[np.isfinite(values)]
        tau = float(values.mean()) if values.size else None
    boot = report.get("bootstrap") or {}
    p_best = best.get("p_best")
    return Recommendation(
        best=best.get("model"),
        runner_up=runner.get("model") if runner else None,
        best_score=None if math.isnan(best_score) else best_score,
        margin=margin,
        agreeing=agreeing,
        n_metrics=len(used),
        mean_tau=tau,
        p_best=None if p_best is None else float(p_best),
        rank_interval=best.get("rank_interval"),
        tied_top=list(boot.get("tied_top") or []),
        statement=boot.get("statement"),
    )


# --------------------------------------------------------------------------------------- agreement


def _kendall_tau(a: np.ndarray, b: np.ndarray) -> float:
    """Kendall's tau-b between two rank vectors over the entries both define; NaN with fewer than 2."""
    from scipy.stats import kendalltau

    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < 2:
        return math.nan
    tau = kendalltau(a[ok], b[ok]).statistic
    return float(tau) if np.isfinite(tau) else math.nan


def metric_rank_matrix(report: Mapping[str, Any], metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Candidates × metrics of per-metric ranks (1 = best); derived from the scores where a rank is missing.

    Deriving honours each metric's ``higher_is_better`` so that rank 1 is always that metric's favourite.
    """
    names = list(metrics) if metrics is not None else metric_names(report)
    direction = {m["name"]: m.get("higher_is_better", True) for m in report.get("metrics", [])}
    ranking = report.get("ranking", [])
    models = [row.get("model") for row in ranking]
    out = pd.DataFrame(index=models, columns=names, dtype=float)
    for name in names:
        given = [to_float((row.get("metric_ranks") or {}).get(name)) for row in ranking]
        if all(math.isnan(v) for v in given):
            scores = pd.Series(
                [to_float((row.get("scores") or {}).get(name)) for row in ranking], index=models
            )
            given = scores.rank(ascending=not direction.get(name, True), method="average").tolist()
        out[name] = given
    return out


def agreement_matrix(report: Mapping[str, Any], metrics: Sequence[str] | None = None) -> pd.DataFrame:
    """Metrics × metrics Kendall's tau between their rankings of the candidates (symmetric, diagonal 1).

    Uses the report's own ``agreement`` block when it covers the requested metrics (that is what the ranking
    computed), else computes tau from the per-metric ranks. Pairs with fewer than two candidates scored by
    both are NaN.
    """
    names = list(metrics) if metrics is not None else metric_names(report)
    given = report.get("agreement") or {}
    given_names = list(given.get("metrics") or [])
    matrix = given.get("kendall_tau")
    if names and set(names) <= set(given_names) and matrix is not None:
        full = pd.DataFrame(np.array(matrix, dtype=float), index=given_names, columns=given_names)
        return full.loc[names, names]
    ranks = metric_rank_matrix(report, names)
    out = pd.DataFrame(np.eye(len(names)), index=names, columns=names)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            tau = _kendall_tau(ranks[a].to_numpy(float), ranks[b].to_numpy(float))
            out.loc[a, b] = out.loc[b, a] = tau
    return out


def metric_scores(report: Mapping[str, Any], metric: str) -> pd.DataFrame:
    """One metric's scores for the bar chart: columns ``model``, ``name`` (display name), ``score``, ``rank``,
    ordered best first.

    Candidates the metric skipped (score null) are left out.
    """
    ranks = metric_rank_matrix(report, [metric])[metric]
    display = display_names(report)
    rows = [
        {
            "model": row.get("model"),
            "name": display.get(str(row.get("model")), row.get("model")),
            "score": to_float((row.get("scores") or {}).get(metric)),
            "rank": rank,
        }
        for row, rank in zip(report.get("ranking", []), ranks.to_numpy(float), strict=True)
    ]
    frame = pd.DataFrame(rows, columns=["model", "name", "score", "rank"])
    frame = frame[np.isfinite(frame["score"].to_numpy(float))]
    return frame.sort_values(["rank", "model"], kind="stable").reset_index(drop=True)


def higher_is_better(report: Mapping[str, Any], metric: str) -> bool:
    """The metric's direction as the report records it (True when unknown)."""
    for m in report.get("metrics", []):
        if m.get("name") == metric:
            return bool(m.get("higher_is_better", True))
    return True


# ------------------------------------------------------------------------------------ ground truth


def ground_truth(report: Mapping[str, Any]) -> pd.DataFrame | None:
    """Candidates with a true accuracy: ``model``, ``name``, ``accuracy``, ``aggregate rank`` and one column per
    metric.

    None when the report carries no validation block (no ground truth was given).
    """
    validation = report.get("validation") or {}
    truth = validation.get("truth") or {}
    if not truth:
        return None
    names = metric_names(report)
    display = display_names(report)
    rows = []
    for row in report.get("ranking", []):
        model = row.get("model")
        if model not in truth:
            continue
        scores = row.get("scores") or {}
        item = {
            "model": model,
            "name": display.get(str(model), model),
            "accuracy": to_float(truth[model]),
            "aggregate rank": to_float(row.get("aggregate_score")),
        }
        item.update({m: to_float(scores.get(m)) for m in names})
        rows.append(item)
    return pd.DataFrame(rows, columns=["model", "name", "accuracy", "aggregate rank", *names])


def validation_table(report: Mapping[str, Any]) -> pd.DataFrame | None:
    """The validation statistics, one row per metric (and the aggregate); None without ground truth."""
    validation = report.get("validation") or {}
    rows = validation.get("rows")
    if not rows:
        return None
    columns = ["metric", "weighted_tau", "kendall_tau", "spearman", "pearson", "top1_regret", "top3_recall"]
    frame = pd.DataFrame(rows)
    return frame[[c for c in columns if c in frame.columns] + [c for c in frame.columns if c not in columns]]


def weighted_tau(report: Mapping[str, Any], metric: str) -> float | None:
    """The weighted Kendall's tau of ``metric`` against the true accuracies, from the validation rows."""
    for row in (report.get("validation") or {}).get("rows") or []:
        if row.get("metric") == metric:
            value = to_float(row.get("weighted_tau"))
            return None if math.isnan(value) else value
    return None


# --------------------------------------------------------------------------------------- spectrum


def spectrum_models(report: Mapping[str, Any]) -> list[str]:
    """Candidates with a weight-spectrum analysis, in ranking order."""
    spectrum = report.get("spectrum") or {}
    ordered = [row.get("model") for row in report.get("ranking", []) if row.get("model") in spectrum]
    return ordered + [m for m in spectrum if m not in ordered]


def spectrum_layers(report: Mapping[str, Any], model: str) -> pd.DataFrame:
    """Per-layer spectrum of ``model``: ``depth`` (0 = first analysed layer, in weightwatcher's order),
    ``layer_id``, ``name``, ``alpha``, ``alpha_weighted``, ``log_spectral_norm``, ``stable_rank``, ``flag``.
    """
    entry = (report.get("spectrum") or {}).get(model) or {}
    columns = [
        "depth",
        "layer_id",
        "name",
        "alpha",
        "alpha_weighted",
        "log_spectral_norm",
        "stable_rank",
        "flag",
    ]
    rows = []
    for depth, layer in enumerate(entry.get("layers") or []):
        rows.append(
            {
                "depth": depth,
                "layer_id": str(layer.get("layer_id")),
                "name": layer.get("name") or str(layer.get("layer_id")),
                "alpha": to_float(layer.get("alpha")),
                "alpha_weighted": to_float(layer.get("alpha_weighted")),
                "log_spectral_norm": to_float(layer.get("log_spectral_norm")),
                "stable_rank": to_float(layer.get("stable_rank")),
                "flag": layer.get("flag") or alpha_flag(to_float(layer.get("alpha"))),
            }
        )
    return pd.DataFrame(rows, columns=columns)


def alpha_flag(alpha: float) -> str:
    """'ok' inside :data:`ALPHA_BAND`, 'over-trained?' below it, 'under-trained?' above it (weightwatcher)."""
    if not math.isfinite(alpha):
        return "ok"
    if alpha < ALPHA_BAND[0]:
        return "over-trained?"
    return "under-trained?" if alpha > ALPHA_BAND[1] else "ok"


def esd_layers(report: Mapping[str, Any], model: str) -> list[str]:
    """Layer ids (as strings) whose eigenvalue spectrum the report stores for ``model``."""
    entry = (report.get("spectrum") or {}).get(model) or {}
    return [str(k) for k in (entry.get("esd") or {})]


def esd_histogram(eigenvalues: Sequence[float], bins: int = 40) -> tuple[np.ndarray, np.ndarray]:
    """Log-spaced histogram of a layer's eigenvalues for a log-log plot.

    Returns ``(edges, density)``: ``bins + 1`` edges and ``bins`` densities (count / (n * bin width)), so a
    power-law tail shows as a straight line. Non-positive and non-finite eigenvalues are dropped (they cannot
    be placed on a log axis). Raises ValueError when no positive eigenvalue remains.
    """
    values = np.asarray(eigenvalues, dtype=float)
    values = values[np.isfinite(values) & (values > 0)]
    if values.size == 0:
        raise ValueError("the layer has no positive eigenvalues to plot; choose another layer")
    lo, hi = values.min(), values.max()
    if hi <= lo:  # one distinct value: a single bin around it
        lo, hi = lo / 1.1, hi * 1.1
    edges = np.logspace(np.log10(lo), np.log10(hi), bins + 1)
    counts, _ = np.histogram(values, bins=edges)
    return edges, counts / (values.size * np.diff(edges))


# ---------------------------------------------------------------------------------- feature space


def stratified_sample(labels: np.ndarray, max_points: int, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_points`` samples, drawn per class in proportion to its size.

    Every class keeps at least one sample when ``max_points`` allows, so small classes stay visible in the
    projection. Deterministic for a given ``seed``. All indices when ``len(labels) <= max_points``.
    """
    labels = np.asarray(labels)
    n = labels.shape[0]
    if max_points < 1:
        raise ValueError(f"max_points must be at least 1, got {max_points}")
    if n <= max_points:
        return np.arange(n)
    rng = np.random.default_rng(seed)
    classes, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
    quota = np.floor(counts * (max_points / n)).astype(int)
    quota = np.maximum(quota, np.minimum(1, counts))
    # Hand out what flooring left over to the largest classes, then trim if the minimum of one overshot.
    order = np.argsort(-counts, kind="stable")
    i = 0
    while quota.sum() < max_points:
        c = order[i % len(order)]
        if quota[c] < counts[c]:
            quota[c] += 1
        i += 1
    while quota.sum() > max_points:
        c = order[np.argmax(quota[order] > 1)]
        quota[c] -= 1
    chosen = [
        rng.choice(np.flatnonzero(inverse == c), size=quota[c], replace=False) for c in range(len(classes))
    ]
    return np.sort(np.concatenate(chosen))


@dataclass(frozen=True)
class Projection:
    """A 2-D view of sampled features: ``coords`` (n × 2 float32), their ``labels`` (n,) and ``indices`` (n,)
    into the full matrix; ``explained`` is PCA's explained-variance ratio per axis (None for t-SNE).
    """

    coords: np.ndarray
    labels: np.ndarray
    indices: np.ndarray
    method: str
    n_total: int
    explained: tuple[float, float] | None = None


def project_2d(
    features: np.ndarray, labels: np.ndarray, *, method: str = "pca", max_points: int = 3000, seed: int = 0
) -> Projection:
    """Project features (N × D) to 2-D on a stratified sample of at most ``max_points`` rows.

    ``method='pca'`` (default; exact on the sample, randomised SVD when D is large) or ``'tsne'`` (PCA to 50
    dimensions first, as is usual, then sklearn's t-SNE with a perplexity that fits the sample). Sampling keeps
    the cost independent of N, so 100 000-sample runs stay interactive.
    """
    features = np.asarray(features)
    labels = np.asarray(labels)
    if features.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"features must be N x D with one label per row, got {features.shape} and {labels.shape[0]} labels; "
            "the cached entry is inconsistent, re-extract it"
        )
    if method not in ("pca", "tsne"):
        raise ValueError(f"unknown projection method {method!r}; use 'pca' or 't-SNE' ('tsne')")
    if features.shape[0] < 3:
        raise ValueError(f"need at least 3 samples to project, got {features.shape[0]}")
    idx = stratified_sample(labels, max_points, seed)
    x = np.asarray(features[idx], dtype=np.float32)
    x = x - x.mean(axis=0)
    from sklearn.decomposition import PCA

    if method == "pca":
        # Randomised SVD for wide samples (3000 x 2048: ~0.3 s instead of ~2.5 s for the full SVD); the top two
        # axes of feature matrices are well separated, so it agrees with the exact ones.
        solver = "randomized" if min(x.shape) > 200 else "full"
        pca = PCA(n_components=2, svd_solver=solver, random_state=seed)
        coords = pca.fit_transform(x) if x.shape[1] >= 2 else np.column_stack([x[:, 0], np.zeros(len(x))])
        explained = tuple(float(v) for v in pca.explained_variance_ratio_) if x.shape[1] >= 2 else (1.0, 0.0)
        return Projection(coords.astype(np.float32), labels[idx], idx, "pca", len(labels), explained)  # type: ignore[arg-type]

    from sklearn.manifold import TSNE

    if x.shape[1] > 50:
        x = PCA(n_components=min(50, x.shape[0]), random_state=seed).fit_transform(x)
    perplexity = float(min(30.0, max(2.0, (x.shape[0] - 1) / 3)))
    coords = TSNE(n_components=2, init="pca", perplexity=perplexity, random_state=seed).fit_transform(x)
    return Projection(coords.astype(np.float32), labels[idx], idx, "tsne", len(labels), None)


@dataclass(frozen=True)
class KnnConfusion:
    """Leave-one-out kNN confusion between classes on a sample.

    ``matrix[i, j]``: fraction of class-``i`` samples whose k nearest neighbours vote for class ``j`` (rows sum
    to 1); ``counts`` the raw numbers; ``classes`` the label values in row order; ``accuracy`` the fraction on
    the diagonal overall; ``n_used`` the sampled rows.
    """

    matrix: np.ndarray
    counts: np.ndarray
    classes: np.ndarray
    accuracy: float
    k: int
    n_used: int


def knn_confusion(
    features: np.ndarray, labels: np.ndarray, *, k: int = 5, max_points: int = 5000, seed: int = 0
) -> KnnConfusion:
    """Leave-one-out k-nearest-neighbour classification (Euclidean) on a stratified sample, as a confusion matrix.

    It shows which classes the backbone's features mix up. Votes are counted over the ``k`` nearest other
    samples; a tie goes to the class whose voters are nearer. Cost is O(n² D) in the sample size ``n`` (at most
    ``max_points``), computed in blocks to bound memory.
    """
    features = np.asarray(features)
    labels = np.asarray(labels)
    if features.ndim != 2 or features.shape[0] != labels.shape[0]:
        raise ValueError(
            f"features must be N x D with one label per row, got {features.shape} and {labels.shape[0]} labels; "
            "the cached entry is inconsistent, re-extract it"
        )
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    idx = stratified_sample(labels, max_points, seed)
    x = np.asarray(features[idx], dtype=np.float32)
    classes, y = np.unique(labels[idx], return_inverse=True)
    n = x.shape[0]
    if n < 2:
        raise ValueError("need at least 2 samples for a leave-one-out kNN confusion")
    k = min(k, n - 1)
    sq = np.einsum("ij,ij->i", x, x)
    pred = np.empty(n, dtype=np.int64)
    # Nearer voters get a slightly larger weight so ties resolve toward the closer class, deterministically.
    weights = 1.0 + 1e-6 * np.arange(k, 0, -1)
    block = max(1, min(n, 2_000_000 // max(n, 1)))
    for start in range(0, n, block):
        stop = min(n, start + block)
        d = sq[start:stop, None] - 2.0 * (x[start:stop] @ x.T) + sq[None, :]
        d[np.arange(stop - start), np.arange(start, stop)] = np.inf  # leave the sample itself out
        nn = np.argpartition(d, k - 1, axis=1)[:, :k]
        order = np.argsort(np.take_along_axis(d, nn, axis=1), axis=1, kind="stable")
        nn = np.take_along_axis(nn, order, axis=1)
        votes = np.zeros((stop - start, len(classes)))
        np.add.at(
            votes, (np.repeat(np.arange(stop - start), k), y[nn].ravel()), np.tile(weights, stop - start)
        )
        pred[start:stop] = votes.argmax(axis=1)
    counts = np.zeros((len(classes), len(classes)), dtype=np.int64)
    np.add.at(counts, (y, pred), 1)
    matrix = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    return KnnConfusion(matrix, counts, classes, float(np.trace(counts) / n), k, n)


def class_names_for(labels: np.ndarray, dataset: Mapping[str, Any]) -> dict[Any, str]:
    """Display names for label values: the dataset's ``class_names`` when labels are indices into it."""
    names = list(dataset.get("class_names") or [])
    out: dict[Any, str] = {}
    for value in np.unique(np.asarray(labels)).tolist():
        if isinstance(value, int) and 0 <= value < len(names):
            out[value] = str(names[value])
        else:
            out[value] = str(value)
    return out


def _open_entry(cache_dir: str | os.PathLike[str], feature_key: str | None, model: str) -> Any:
    """The feature-store entry of one candidate; :class:`FeaturesUnavailable` with a fix when it is not there."""
    if not feature_key:
        raise FeaturesUnavailable(
            f"the report records no cached features for {model} (its extraction failed or was skipped)",
            "re-run the ranking with this candidate to extract and cache its features",
        )
    try:
        from analyzer.store import FeatureStore
    except ImportError as exc:
        raise FeaturesUnavailable(
            f"the feature store (analyzer.store) cannot be imported: {exc}",
            "install the analyzer completely (scripts/setup.sh) to browse cached features",
        ) from exc
    try:
        entry = FeatureStore(cache_dir).get(feature_key)
    except AnalyzerError as exc:
        raise FeaturesUnavailable(
            f"the cached features of {model} cannot be read: {exc.message}", exc.fix or _refetch_fix()
        ) from exc
    if entry is None:
        raise FeaturesUnavailable(
            f"the features of {model} (key {feature_key[:12]}…) are not in the cache at {cache_dir}",
            _refetch_fix(),
        )
    return entry


def load_cached_features(
    cache_dir: str | os.PathLike[str], feature_key: str | None, model: str = "this candidate"
) -> tuple[np.ndarray, np.ndarray]:
    """The cached features (N × D float32) and labels (N,) of one candidate, read through the feature store.

    Never extracts: when the entry is not there (pruned, other cache dir, store not installed) this raises
    :class:`FeaturesUnavailable` saying how to get it back.
    """
    entry = _open_entry(cache_dir, feature_key, model)
    return np.asarray(entry.features), np.asarray(entry.labels)


def load_cached_sample(
    cache_dir: str | os.PathLike[str],
    feature_key: str | None,
    model: str = "this candidate",
    *,
    max_points: int = 20_000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, int]:
    """A stratified sample of a candidate's cached features: (n × D float32, n labels, N in the entry).

    Only the sampled rows are copied out of the store's flat index (``reconstruct_batch``), so a 100 000-sample
    entry costs one index read, not a second full N × D matrix. Same errors as :func:`load_cached_features`.
    """
    entry = _open_entry(cache_dir, feature_key, model)
    labels = np.asarray(entry.labels)
    idx = stratified_sample(labels, max_points, seed)
    index = entry.index()
    if hasattr(index, "reconstruct_batch") and len(idx) < len(labels):
        features = index.reconstruct_batch(idx.astype(np.int64))
    else:
        features = np.asarray(entry.features)[idx]
    return np.ascontiguousarray(features, dtype=np.float32), labels[idx], len(labels)


def _refetch_fix() -> str:
    return (
        "point the dashboard at the cache the run used (ANALYZER_CACHE_DIR), or run "
        "`python -m analyzer rank` again with the same data and candidates to re-extract"
    )


# -------------------------------------------------------------------------------------- new ranking


def parse_candidates(text: str) -> list[str]:
    """Model specs from the form: separated by commas or new lines, blanks dropped, duplicates removed.

    Raises AnalyzerError when none is given.
    """
    specs: dict[str, None] = {}
    for part in re.split(r"[,\n]", text or ""):
        part = part.strip()
        if part and not part.startswith("#"):
            specs.setdefault(part, None)
    if not specs:
        raise AnalyzerError(
            "no candidate models given",
            "enter one model spec per line or comma-separated, e.g. timm:resnet18 or torchscript:path/model.pt",
        )
    return list(specs)


def available_metrics() -> list[str]:
    """Metric names the form offers: every registered metric (label-based and data-free)."""
    import metrics

    return list(metrics.available())


#: ``progress(model, fraction, message)``: fraction of that candidate's work done, in [0, 1].
ProgressFn = Callable[[str, float, str], None]


class _CandidateProgress:
    """Turns the Ranker's progress events into per-candidate fractions for the form's progress bars.

    The Ranker announces each unit of work it starts for a candidate (features, each metric, the weight spectrum,
    each bootstrap) as a :class:`analyzer.ranking.ProgressEvent`; a cached unit is not announced, so fractions can
    jump, and :meth:`finish` completes every bar from the result.
    """

    def __init__(self, specs: Sequence[str], n_units: int, callback: ProgressFn | None) -> None:
        self.specs = list(specs)
        self.n_units = max(n_units, 1)
        self.started: dict[str, int] = dict.fromkeys(self.specs, 0)
        self.callback = callback
        for spec in self.specs:
            self._emit(spec, 0.0, "waiting")

    def _emit(self, spec: str, fraction: float, message: str) -> None:
        if self.callback is not None:
            self.callback(spec, min(max(fraction, 0.0), 1.0), message)

    def event(self, event: Any) -> None:  # event: analyzer.ranking.ProgressEvent
        if event.model not in self.started:
            return
        if event.stage == "failed":
            detail = event.message.removeprefix("[rank]").strip()
            self._emit(event.model, 1.0, detail)
            return
        done = self.started[event.model]
        self.started[event.model] = done + 1
        self._emit(event.model, done / self.n_units, event.stage)

    def finish(self, result: Any) -> None:
        failed = {f["model"]: f.get("error", "") for f in getattr(result, "failed", []) or []}
        for spec in self.specs:
            self._emit(spec, 1.0, f"failed: {failed[spec]}" if spec in failed else "done")


def start_ranking(
    cache_dir: str | os.PathLike[str],
    *,
    data: str,
    candidates: str | Sequence[str],
    metrics: Sequence[str] | None = None,
    name: str = "dashboard",
    max_per_class: int | None = None,
    n_bootstrap: int = 100,
    seed: int = 0,
    progress: ProgressFn | None = None,
) -> Path:
    """Run a ranking with :class:`analyzer.ranking.Ranker` (as the ``rank`` command does) and save it.

    ``candidates``: specs as a list, or the form's text (see :func:`parse_candidates`); ``metrics``: None or
    empty for the Ranker's defaults. The run goes to ``<cache>/runs/<timestamp>-<name>/`` with all four report
    files; returns that directory. ``progress(model, fraction, message)`` is called as each candidate advances.
    Bad input raises AnalyzerError (or ValueError from the metrics) with the fix.
    """
    specs = parse_candidates(candidates) if isinstance(candidates, str) else list(candidates)
    if not specs:
        raise AnalyzerError("no candidate models given", "pass at least one model spec")
    if not (data or "").strip():
        raise AnalyzerError(
            "no dataset given",
            "enter an image folder, a .csv/.jsonl/.npz file, a save_to_disk directory, or sklearn:digits",
        )
    import metrics as metrics_lib
    from analyzer.paths import CacheLayout
    from analyzer.ranking import Ranker, default_metric_names

    chosen = list(metrics) if metrics else default_metric_names()
    label_metrics = [m for m in chosen if metrics_lib.info(m).kind == "label"]
    units = (
        1
        + len(label_metrics)
        + (len(chosen) - len(label_metrics))
        + (len(label_metrics) if n_bootstrap else 0)
    )
    tracker = _CandidateProgress(specs, units, progress)
    ranker = Ranker(
        data.strip(),
        cache_dir=cache_dir,
        max_per_class=max_per_class,
        seed=seed,
        progress=False,
        on_progress=tracker.event,
    )
    result = ranker.run(specs, metrics=chosen, n_bootstrap=n_bootstrap, name=name)
    out = CacheLayout(ranker.cache_dir).new_run_dir(name)
    result.save(out)
    tracker.finish(result)
    return out
