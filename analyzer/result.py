"""RankingResult: the one result object of a ranking run; ``report.json`` is it serialised.

Every report writer (``analyzer.reports``), the ``evaluate`` command and the dashboard read this object and
nothing else, so the JSON schema documented in DESIGN.md ("the result object and report.json") is exactly
:meth:`RankingResult.to_dict`. The schema is versioned by :data:`SCHEMA_VERSION`; :meth:`RankingResult.from_dict`
refuses a version it does not know instead of misreading it.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.errors import ReportError
from analyzer.paths import atomic_write_text  # noqa: F401 - re-exported: ranking, spectrum, reports use it

#: Version of the report.json layout. Bump it when a field changes meaning or disappears.
SCHEMA_VERSION = 1

#: Validation statistics, in the order reports print them (column names of ``validation.rows``).
VALIDATION_COLUMNS = ("weighted_tau", "kendall_tau", "spearman", "pearson", "top1_regret", "top3_recall")

#: The name the aggregate gets in validation rows and agreement tables.
AGGREGATE = "aggregate"


@dataclass
class RankingResult:
    """Candidates ranked for one dataset, with everything needed to trust (or distrust) the ranking.

    Fields mirror report.json (see DESIGN.md). ``ranking`` is ordered best first; each entry has ``model``,
    ``rank`` (1 = best; tied candidates share the better rank), ``aggregate_score`` (mean rank over the aggregate
    metrics: lower is better), ``scores`` {metric: raw value or None}, ``metric_ranks`` {metric: rank or None}.
    """

    name: str
    created: str
    dataset: dict[str, Any]
    config: dict[str, Any]
    metrics: list[dict[str, Any]]
    aggregate: dict[str, Any]
    ranking: list[dict[str, Any]]
    skipped: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    bootstrap: dict[str, Any] | None = None
    agreement: dict[str, Any] = field(default_factory=lambda: {"metrics": [], "kendall_tau": []})
    baseline_agreement: dict[str, dict[str, float | None]] = field(default_factory=dict)
    spectrum: dict[str, Any] = field(default_factory=dict)
    validation: dict[str, Any] | None = None
    environment: dict[str, Any] = field(default_factory=dict)
    timings: dict[str, Any] = field(default_factory=dict)
    #: Where the result was loaded from or last saved to (not serialised).
    run_dir: Path | None = field(default=None, compare=False)

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """The report.json object: plain JSON types only, NaN/inf written as null."""
        out: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
        for f in fields(self):
            if f.name == "run_dir":
                continue
            out[f.name] = _jsonable(getattr(self, f.name))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RankingResult:
        """Rebuild a result from :meth:`to_dict` output; an unknown schema version raises ReportError."""
        version = data.get("schema_version")
        if version != SCHEMA_VERSION:
            raise ReportError(
                f"report has schema_version {version!r}; this analyzer reads version {SCHEMA_VERSION}",
                "re-run `python -m analyzer rank` with this version to regenerate the report",
            )
        known = {f.name for f in fields(cls)} - {"run_dir"}
        missing = sorted({"name", "dataset", "ranking", "metrics"} - set(data))
        if missing:
            raise ReportError(
                f"report is missing the field(s) {', '.join(missing)}",
                "pass a report.json written by `python -m analyzer rank`",
            )
        kwargs = {k: v for k, v in data.items() if k in known}
        kwargs.setdefault("created", "")
        kwargs.setdefault("config", {})
        kwargs.setdefault("aggregate", {"method": "mean_rank", "metrics": [], "description": ""})
        return cls(**kwargs)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> RankingResult:
        """Read a report.json, or the report.json inside a run directory."""
        path = Path(path)
        if path.is_dir():
            path = path / "report.json"
        if not path.is_file():
            raise ReportError(
                f"no report at {path}",
                "give the report.json of a run (runs live under <cache dir>/runs/<timestamp>-<name>/)",
            )
        from analyzer.inputs import read_user_text

        fix = "give the report.json a `python -m analyzer rank` run wrote (or re-run it)"
        text = read_user_text(path, what="report", fix=fix, kind=ReportError)
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise ReportError(f"cannot read {path} as JSON: {exc}", fix) from exc
        if not isinstance(data, dict):
            raise ReportError(f"{path} holds a JSON {type(data).__name__}, not a report object", fix)
        result = cls.from_dict(data)
        result.run_dir = path.parent
        return result

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write report.json, ranking.csv, report.md and report.html into ``out_dir`` (each atomically).

        Returns the directory. The result remembers it as :attr:`run_dir`.
        """
        from analyzer.reports import write_reports  # the writers import this module

        out = Path(out_dir)
        write_reports(self, out)
        self.run_dir = out
        return out

    # ------------------------------------------------------------------ views
    @property
    def models(self) -> list[str]:
        """Ranked models, best first."""
        return [row["model"] for row in self.ranking]

    @property
    def display_names(self) -> dict[str, str]:
        """``{model spec: short unique name}`` for every candidate the report mentions (ranked, failed, with a
        spectrum); tables and charts show these, and list the full specs once (see :mod:`analyzer.naming`)."""
        from analyzer.naming import report_display_names

        return report_display_names(
            {
                "ranking": self.ranking,
                "failed": self.failed,
                "skipped": self.skipped,
                "spectrum": self.spectrum,
            }
        )

    def metric_names(self, kind: str | None = None) -> list[str]:
        """Metric names in report order, optionally only one ``kind`` ("label", "data_free", "baseline")."""
        return [m["name"] for m in self.metrics if kind is None or m.get("kind") == kind]

    def metric(self, name: str) -> dict[str, Any]:
        """The metrics entry called ``name``; an unknown name lists the valid ones."""
        for m in self.metrics:
            if m["name"] == name:
                return m
        raise ReportError(
            f"the report has no metric {name!r}", f"choose one of {', '.join(self.metric_names())}"
        )

    @property
    def table(self):  # -> pandas.DataFrame (imported lazily: pandas is slow to import)
        """The ranking as a DataFrame, one row per ranked candidate, best first.

        Columns: ``model`` (the full spec), ``name`` (its short display name), ``rank``, ``aggregate_score`` (mean
        rank, lower is better), then per metric
        ``<metric>`` (raw score) and ``<metric>_rank``, then ``p_best``, ``rank_lo``, ``rank_hi``, ``feature_dim``,
        ``num_params``, ``source_accuracy``, ``extraction_seconds``.
        """
        import pandas as pd

        names = self.metric_names()
        display = self.display_names
        rows = []
        for entry in self.ranking:
            row: dict[str, Any] = {
                "model": entry["model"],
                "name": display[entry["model"]],
                "rank": entry["rank"],
                "aggregate_score": entry.get("aggregate_score"),
            }
            for name in names:
                row[name] = entry.get("scores", {}).get(name)
                row[f"{name}_rank"] = entry.get("metric_ranks", {}).get(name)
            interval = entry.get("rank_interval") or [None, None]
            row.update(
                p_best=entry.get("p_best"),
                rank_lo=interval[0],
                rank_hi=interval[1],
                feature_dim=entry.get("feature_dim"),
                num_params=entry.get("num_params"),
                source_accuracy=entry.get("source_accuracy"),
                extraction_seconds=entry.get("extraction_seconds"),
            )
            rows.append(row)
        columns = ["model", "name", "rank", "aggregate_score"]
        for name in names:
            columns += [name, f"{name}_rank"]
        columns += [
            "p_best",
            "rank_lo",
            "rank_hi",
            "feature_dim",
            "num_params",
            "source_accuracy",
            "extraction_seconds",
        ]
        return pd.DataFrame(rows, columns=columns)

    def oriented_scores(self, name: str) -> dict[str, float]:
        """{model: score} for a metric, the aggregate or a baseline, oriented so that higher is better.

        Models with no score are left out. The aggregate is the negated mean rank.
        """
        out: dict[str, float] = {}
        if name == AGGREGATE:
            for entry in self.ranking:
                if entry.get("aggregate_score") is not None:
                    out[entry["model"]] = -float(entry["aggregate_score"])
            return out
        sign = 1.0 if self.metric(name).get("higher_is_better", True) else -1.0
        for entry in self.ranking:
            value = entry.get("scores", {}).get(name)
            if value is not None and math.isfinite(value):
                out[entry["model"]] = sign * float(value)
        return out

    # ------------------------------------------------------------------ validation
    def validate(self, truth: dict[str, float]) -> dict[str, Any]:
        """Compare every metric, baseline and the aggregate with ground-truth accuracies; store and return it.

        ``truth`` is {model: accuracy} (higher is better). Each row holds weighted Kendall's tau (hyperbolic
        weights, scipy's ``weightedtau`` defaults, as the transferability papers compute it), Kendall's tau,
        Spearman, Pearson, top-1 regret (best true accuracy minus the true accuracy of the metric's top
        candidate: lower is better, in accuracy units) and top-3 recall (share of the 3 truly best found in
        the metric's top 3). Statistics are over the candidates that have both a score and a truth; fewer than
        3 such candidates gives nulls.
        """
        from metrics import correlation

        ranked = set(self.models)
        known = {m: float(a) for m, a in truth.items() if m in ranked}
        if len(known) < 2:
            raise ReportError(
                f"the ground truth names {len(known)} of the report's {len(ranked)} models "
                f"(truth has: {', '.join(sorted(truth)) or 'nothing'}; report has: {', '.join(self.models)})",
                "give a truth CSV whose `model` column uses the same specs as the report",
            )
        rows = []
        for name in [AGGREGATE, *self.metric_names()]:
            scores = self.oriented_scores(name)
            common = [m for m in self.models if m in scores and m in known]
            row: dict[str, Any] = {"metric": name, "n_models": len(common)}
            if len(common) < 3:
                row.update(dict.fromkeys(VALIDATION_COLUMNS))
            else:
                s = np.array([scores[m] for m in common], dtype=float)
                t = np.array([known[m] for m in common], dtype=float)
                row["weighted_tau"] = _finite(correlation.weighted_tau(s, t))
                row["kendall_tau"] = _finite(correlation.kendall_tau(s, t))
                row["spearman"] = _finite(correlation.spearman(s, t))
                row["pearson"] = _finite(correlation.pearson(s, t))
                row["top1_regret"] = _finite(correlation.top1_regret(s, t))
                row["top3_recall"] = _finite(correlation.top_k_recall(s, t, k=3))
            rows.append(row)
        self.validation = {"truth": known, "rows": rows}
        return self.validation


def _finite(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _jsonable(value: Any) -> Any:
    """Plain JSON types: numpy scalars/arrays converted, NaN and inf as None, Paths as str."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.bool_ | bool):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value
