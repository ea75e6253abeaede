"""RankingResult: the one result object of a ranking run; ``report.json`` is it serialised.

Every report writer (``analyzer.reports``), the ``evaluate`` command, the demo and the dashboard read this object
and nothing else, so the JSON schema documented in DESIGN.md ("the result object and report.json") is exactly
:meth:`RankingResult.to_dict`, and this module is the only reader and writer of report.json. The schema is
versioned by :data:`SCHEMA_VERSION`; :meth:`RankingResult.from_dict` reads the versions in
:data:`READABLE_VERSIONS` (filling sections an older or hand-made report lacks) and refuses any other with one
:class:`ReportError` instead of misreading it.

The judgements every view shares live here too, so the headline of report.md, report.html and the dashboard
cannot disagree: :meth:`RankingResult.top_tie` (who is tied for first, with or without a bootstrap),
:meth:`RankingResult.headline` (with :meth:`RankingResult.basis`, the metrics it relied on),
:meth:`RankingResult.few_per_class_note` (which column to trust with few images per class),
:meth:`RankingResult.mean_agreement` and :meth:`RankingResult.spectrum_warnings`.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from analyzer.errors import ReportError
from analyzer.paths import atomic_write_text  # noqa: F401 - re-exported: ranking, spectrum, reports use it

if TYPE_CHECKING:
    import pandas

#: Version of the report.json layout. Bump it when a field changes meaning or disappears.
SCHEMA_VERSION = 1
#: Versions :meth:`RankingResult.from_dict` reads (older ones are upgraded there, where that is cheap).
READABLE_VERSIONS = (1,)
#: Kendall's tau between two rankings needs this many commonly ranked candidates (the ranking's agreement block
#: is null below it: two candidates always give tau = +-1, which says nothing).
MIN_AGREEMENT_CANDIDATES = 3

#: Validation statistics, in the order reports print them (column names of ``validation.rows``).
VALIDATION_COLUMNS = ("weighted_tau", "kendall_tau", "spearman", "pearson", "top1_regret", "top3_recall")

#: The name the aggregate gets in validation rows and agreement tables.
AGGREGATE = "aggregate"


def _check_row(row: dict[str, Any], i: int, seen: set[str], source: str, fix: str) -> None:
    """A ranking row names a model not listed before, and each score is a number or null: a model listed twice
    validated to a perfect tau, and a string score ended in an internal error."""
    model = row["model"]
    if not isinstance(model, str) or model in seen:
        what = "is not a model spec" if not isinstance(model, str) else "lists it a second time"
        raise ReportError(f"{source}: ranking entry {i} ({model!r}) {what}", f"list each model once; {fix}")
    seen.add(model)
    for metric, value in row["scores"].items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ReportError(
                f"{source}: ranking entry {i} ({model!r}) has a {type(value).__name__} score for {metric!r} "
                f"({value!r}); scores are numbers or null",
                f"write the score as a number (or null where it is missing); {fix}",
            )


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
    #: The module constants, reachable from an instance: the report writers import this module for type
    #: checking only (:meth:`save` imports them, so a runtime import back would be a cycle).
    validation_columns: ClassVar[tuple[str, ...]] = VALIDATION_COLUMNS
    aggregate_name: ClassVar[str] = AGGREGATE
    min_agreement_candidates: ClassVar[int] = MIN_AGREEMENT_CANDIDATES

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
    def from_dict(cls, data: Any, source: str = "report.json") -> RankingResult:
        """Rebuild a result from :meth:`to_dict` output (a decoded report.json).

        Reads every version in :data:`READABLE_VERSIONS`. Optional sections missing from an older or hand-made
        report are filled with their empty value; a metric that only appears in the scores is added as a
        higher-is-better label metric; the ranking is put best first. Anything else that is not a report raises
        :class:`ReportError` naming ``source``, the problem and the fix.
        """
        fix = "pass a report.json written by `python -m analyzer rank` (it is in the run's output directory)"
        if not isinstance(data, dict):
            raise ReportError(f"{source} is not a ranking report: its top level is not a JSON object", fix)
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise ReportError(
                f"{source} has schema_version {version!r}; this analyzer reads version(s) "
                f"{', '.join(map(str, READABLE_VERSIONS))}",
                "open it with the analyzer version that wrote it, or re-run `python -m analyzer rank` with this "
                "version to regenerate the report",
            )
        ranking = data.get("ranking")
        if not isinstance(ranking, list):
            raise ReportError(f"{source} has no 'ranking' list", fix)
        seen: set[str] = set()
        for i, row in enumerate(ranking):
            if not isinstance(row, dict) or not {"model", "rank", "scores"} <= row.keys():
                raise ReportError(f"{source}: ranking entry {i} lacks one of 'model', 'rank', 'scores'", fix)
            if not isinstance(row["scores"], dict):
                raise ReportError(
                    f"{source}: ranking entry {i} ('{row['model']}') has 'scores' that is not an object", fix
                )
            _check_row(row, i, seen, source, fix)
        known = {f.name for f in fields(cls)} - {"run_dir"}
        kwargs = {k: v for k, v in data.items() if k in known and v is not None}
        kwargs.setdefault("name", "")
        kwargs.setdefault("created", "")
        kwargs.setdefault("dataset", {})
        kwargs.setdefault("config", {})
        kwargs.setdefault("metrics", [])
        kwargs.setdefault("aggregate", {"method": "mean_rank", "metrics": [], "description": ""})
        kwargs.setdefault("bootstrap", data.get("bootstrap"))
        kwargs.setdefault("validation", data.get("validation"))
        rows = [dict(row) for row in ranking]
        for row in rows:
            row.setdefault("metric_ranks", {})
        rank_key = [(math.inf if not isinstance(r["rank"], int | float) else r["rank"]) for r in rows]
        kwargs["ranking"] = [row for _, _, row in sorted(zip(rank_key, range(len(rows)), rows, strict=True))]
        names = {m.get("name") for m in kwargs["metrics"] if isinstance(m, dict)}
        extra = [n for row in rows for n in row["scores"] if n not in names]
        kwargs["metrics"] = [m for m in kwargs["metrics"] if isinstance(m, dict) and "name" in m] + [
            {"name": n, "params": {}, "higher_is_better": True, "kind": "label", "in_aggregate": False}
            for n in dict.fromkeys(extra)
        ]
        return cls(**kwargs)

    @classmethod
    def from_bytes(cls, raw: bytes, source: str = "the uploaded file") -> RankingResult:
        """Decode report.json bytes (an upload); undecodable bytes raise :class:`ReportError` saying where."""
        try:
            data = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise ReportError(
                f"{source} is not UTF-8 text ({exc.reason} at byte {exc.start})",
                "use the report.json file itself",
            ) from exc
        except json.JSONDecodeError as exc:
            raise ReportError(
                f"{source} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                "use the report.json that `python -m analyzer rank` wrote, unmodified",
            ) from exc
        return cls.from_dict(data, source)

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
            raise ReportError(
                f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}", fix
            ) from exc
        result = cls.from_dict(data, str(path))
        result.run_dir = path.parent
        return result

    def save(
        self, out_dir: str | os.PathLike[str], *, cache_dir: str | os.PathLike[str] | None = None
    ) -> Path:
        """Write report.json, ranking.csv, report.md and report.html into ``out_dir`` (each atomically).

        ``cache_dir``: the analyzer's cache, where report.html's plots are remembered (same bytes either way).
        Returns the directory. The result remembers it as :attr:`run_dir`.
        """
        from analyzer.reports import write_reports  # the writers import this module

        out = Path(out_dir)
        write_reports(self, out, cache_dir=cache_dir)
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
    def table(self) -> pandas.DataFrame:  # pandas is imported lazily: it is slow to import
        """The ranking as a DataFrame, best first; ranking.csv is this table (see
        :func:`analyzer.reports.csv_report.ranking_table` for its columns)."""
        from analyzer.reports.csv_report import ranking_table  # the writers import this module

        return ranking_table(self)

    # ------------------------------------------------------------------ judgements every view shares
    @property
    def aggregate_metrics(self) -> list[str]:
        """The metrics whose mean rank is the aggregate (every label metric when the report does not say)."""
        names = list(self.aggregate.get("metrics") or [])
        flagged = [m["name"] for m in self.metrics if m.get("in_aggregate")]
        return names or flagged or self.metric_names("label")

    def top_tie(self) -> list[str]:
        """The candidates tied for first, best first; one model when the top is clear, none when nothing ranked.

        Without a bootstrap: candidates whose aggregate mean rank is within :meth:`tie_margin` of the best (an
        exact tie, or less than one place in one aggregate metric apart, which only averaged or missing ranks
        produce). With a bootstrap, its ``tied_top`` (best in at least 5 % of resamples) joins them.
        """
        ranked = [e for e in self.ranking if e.get("aggregate_score") is not None]
        if not ranked:
            return [self.ranking[0]["model"]] if self.ranking else []
        best = float(ranked[0]["aggregate_score"])
        margin = self.tie_margin()
        tied = {e["model"] for e in ranked if float(e["aggregate_score"]) - best < margin}
        tied |= set((self.bootstrap or {}).get("tied_top") or []) & set(self.models)
        return [m for m in self.models if m in tied]

    def tie_margin(self) -> float:
        """Mean-rank difference below which two candidates count as tied: one place in one aggregate metric."""
        return 1.0 / max(len(self.aggregate_metrics), 1) - 1e-9

    def runner_up(self) -> str | None:
        """The best candidate after those tied for first, or None."""
        tied = set(self.top_tie())
        return next((m for m in self.models if m not in tied), None)

    def headline(self) -> str:
        """The pick (or the tie) and the runner-up, named by display name, then :meth:`basis` (the metrics it
        relied on); what every view leads with."""
        if not self.ranking:
            return "No candidate was ranked; see the failed candidates."
        names = self.display_names
        tied = self.top_tie()
        runner = self.runner_up()
        score = {e["model"]: e.get("aggregate_score") for e in self.ranking}

        def mean_rank(model: str) -> str:
            value = score.get(model)
            return "no mean rank" if value is None else f"mean rank {value:.2f}"

        if len(tied) > 1:
            listed = ", ".join(names[m] for m in tied[:-1]) + f" and {names[tied[-1]]}"
            text = f"Tied: {listed} ({', '.join(mean_rank(m) for m in tied)})"
        else:
            text = f"Recommendation: {names[tied[0]]} ({mean_rank(tied[0])})"
        if runner is not None:
            text += f"; runner-up {names[runner]} ({mean_rank(runner)})"
        return f"{text}. {self.basis()}"

    def basis(self) -> str:
        """Which metrics the recommendation relied on: the aggregate's members, e.g. ``Relied on the mean rank of
        logme, knn, ncti, sfda.``"""
        members = self.aggregate_metrics
        if len(members) == 1:
            return f"Relied on {members[0]} alone."
        return f"Relied on the mean rank of {', '.join(members)}."

    def few_per_class_note(self) -> str | None:
        """With few images per class, which column to trust over the aggregate and whether it agrees with the pick.

        The rule and its evidence are the measured record's (:func:`analyzer.metric_record.few_per_class`): below
        ``below`` images per class (the dataset's mean, ``n_samples / n_classes``) the aggregate was not measured
        to rank well and the ``trust`` metric (kNN) was the best single metric. None when the dataset has enough
        images per class, the aggregate is that metric alone, or nothing was ranked.
        """
        view = self._few_per_class()
        return None if view is None else view[0]

    def few_per_class_agrees(self) -> bool | None:
        """Whether the metric :meth:`few_per_class_note` says to trust ranks the pick first (None: no note; False
        too when it was not scored), so a view can warn only when it does not."""
        view = self._few_per_class()
        return None if view is None else view[1]

    def _few_per_class(self) -> tuple[str, bool] | None:
        """(:meth:`few_per_class_note`, :meth:`few_per_class_agrees`), or None when the rule does not apply."""
        from analyzer.metric_record import aggregate_key, few_per_class, few_shot_worst_case

        rule = few_per_class()
        trusted, below = str(rule["trust"]), float(rule["below"])
        n, c = self.dataset.get("n_samples"), self.dataset.get("n_classes")
        if not self.ranking or not n or not c or n / c >= below or self.aggregate_metrics == [trusted]:
            return None
        text = (
            f"Few images per class (about {n / c:.0f}; fewer than {below:.0f}): trust {trusted}'s column over the "
            f"aggregate. Measured: {rule['why']}"
        )
        ours = few_shot_worst_case(trusted)
        theirs = few_shot_worst_case(aggregate_key(self.aggregate_metrics))
        if ours is not None and theirs is not None:
            text += f"; worst-case weighted tau there: {trusted} {ours:.3f}, this aggregate {theirs:.3f}"
        names = self.display_names
        scores = self.oriented_scores(trusted) if trusted in self.metric_names() else {}
        if not scores:
            return (
                text
                + f". {trusted} was not scored in this run: add it to the run's metrics to see its pick.",
                False,
            )
        best = max(scores.values())
        its_top = [m for m in self.models if scores.get(m) == best]
        pick = self.top_tie()
        if set(its_top) & set(pick):
            return text + f". {trusted} agrees: it ranks {names[its_top[0]]} first too.", True
        ranks = {e["model"]: (e.get("metric_ranks") or {}).get(trusted) for e in self.ranking}
        rank = ranks.get(pick[0])
        where = "" if rank is None else f" (the aggregate's pick, {names[pick[0]]}, is its #{rank:g})"
        listed = " and ".join(names[m] for m in its_top)
        return text + f". {trusted} disagrees: it ranks {listed} first{where}.", False

    def mean_agreement(self) -> float | None:
        """Mean pairwise Kendall's tau between the aggregate metrics' rankings (1 = identical orders).

        Taken from the ranking's ``agreement`` block; None with fewer than :data:`MIN_AGREEMENT_CANDIDATES`
        candidates or fewer than two aggregate metrics.
        """
        names = list(self.agreement.get("metrics") or [])
        matrix = self.agreement.get("kendall_tau") or []
        used = [n for n in self.aggregate_metrics if n in names]
        values = [
            matrix[names.index(a)][names.index(b)]
            for i, a in enumerate(used)
            for b in used[i + 1 :]
            if matrix[names.index(a)][names.index(b)] is not None
        ]
        return float(np.mean(values)) if values else None

    def spectrum_warnings(self) -> dict[str, str]:
        """``{model: warning}`` for every model most of whose analysed layers sit outside weightwatcher's 2-6 band.

        Its (weighted) alpha is then not a sign of good training, so no view lets it "win" on alpha unwarned.
        Counts the layers' ``flag`` as :func:`analyzer.spectrum.alpha_flag` wrote it.
        """
        out: dict[str, str] = {}
        names = self.display_names
        for model, entry in self.spectrum.items():
            layers = entry.get("layers") or [] if isinstance(entry, dict) else []
            outside = [x for x in layers if x.get("flag", "ok") != "ok"]
            if layers and 2 * len(outside) > len(layers):
                mean = entry.get("alpha")
                shown = "—" if mean is None else f"{mean:.2f}"
                out[model] = (
                    f"{len(outside)} of {len(layers)} layers of {names.get(model, model)} sit outside the "
                    f"well-trained alpha range 2–6 (mean alpha {shown}): its alpha says little about training"
                )
        return out

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
        """Compare every metric, baseline and the aggregate with ground-truth accuracies ({model: accuracy});
        store the ``validation`` block and return it (statistics in :func:`analyzer.validation.validation_block`).
        """
        from analyzer.validation import validation_block

        self.validation = validation_block(self, truth)
        return self.validation


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
