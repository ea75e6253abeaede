"""RankingResult: the one result object of a ranking run; ``report.json`` is it serialised.

Every report writer (``analyzer.reports``), the ``evaluate`` command, the demo and the dashboard read this object
and nothing else, so the JSON schema documented in DESIGN.md ("the result object and report.json") is exactly
:meth:`RankingResult.to_dict`, and this module is the only reader and writer of report.json. Its sections are the
typed records of :mod:`analyzer.report_types` (attributes mypy checks, not string keys); the result is frozen:
it is built once, by the aggregate stage (or read from a report.json), and a validation makes a new one
(:meth:`RankingResult.with_validation`). The schema is versioned by :data:`SCHEMA_VERSION`;
:meth:`RankingResult.from_dict` reads the versions in :data:`READABLE_VERSIONS` (filling sections an older or
hand-made report lacks) and refuses any other, or anything that is not a report, with one :class:`ReportError`.

The judgements every view shares live here too, so the headline of report.md, report.html and the dashboard
cannot disagree: :meth:`RankingResult.top_tie` (who is tied for first, with or without a bootstrap),
:meth:`RankingResult.headline` (with :meth:`RankingResult.basis`, the metrics it relied on),
:meth:`RankingResult.few_per_class_note` (which column to trust with few images per class),
:meth:`RankingResult.mean_agreement` and :meth:`RankingResult.spectrum_warnings`. Writing the report files is
:func:`analyzer.reports.save` (the reports depend on the result, never the reverse).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from analyzer.errors import ReportError
from analyzer.few_per_class import few_per_class_view
from analyzer.jsonable import Record, SchemaError
from analyzer.naming import short_names
from analyzer.report_types import (
    AGGREGATE,
    BASELINE_KIND,
    MIN_AGREEMENT_CANDIDATES,
    VALIDATION_COLUMNS,
    AggregateInfo,
    Agreement,
    Bootstrap,
    DatasetInfo,
    Failed,
    MetricEntry,
    ModelSpectrum,
    RankingRow,
    Skipped,
    Validation,
    check_row,
)
from analyzer.validation import validation_block

__all__ = [
    "AGGREGATE",
    "MIN_AGREEMENT_CANDIDATES",
    "READABLE_VERSIONS",
    "SCHEMA_VERSION",
    "VALIDATION_COLUMNS",
    "RankingResult",
    "ReportError",
]

#: Version of the report.json layout. Bump it when a field changes meaning or disappears.
SCHEMA_VERSION = 1
#: Versions :meth:`RankingResult.from_dict` reads (older ones are upgraded there, where that is cheap).
READABLE_VERSIONS = (1,)
_FIX = "pass a report.json written by `python -m analyzer rank` (it is in the run's output directory)"


@dataclass(frozen=True, kw_only=True)
class RankingResult(Record):
    """Candidates ranked for one dataset, with everything needed to trust (or distrust) the ranking.

    Fields mirror report.json (see DESIGN.md), in its order; ``ranking`` is ordered best first (see
    :class:`analyzer.report_types.RankingRow`). ``config`` (the resolved request), ``environment`` (versions,
    hardware) and ``timings`` (seconds per stage) are open mappings. A new section is one field here (with a
    default) and, when it has entries, one record in :mod:`analyzer.report_types`.
    """

    name: str = ""
    created: str = ""
    dataset: DatasetInfo = field(default_factory=DatasetInfo)
    config: Mapping[str, Any] = field(default_factory=dict)
    metrics: Sequence[MetricEntry] = ()
    aggregate: AggregateInfo = field(default_factory=AggregateInfo)
    ranking: Sequence[RankingRow]
    skipped: Sequence[Skipped] = ()
    failed: Sequence[Failed] = ()
    bootstrap: Bootstrap | None = None
    agreement: Agreement = field(default_factory=Agreement)
    baseline_agreement: Mapping[str, Mapping[str, float | None]] = field(default_factory=dict)
    spectrum: Mapping[str, ModelSpectrum] = field(default_factory=dict)
    validation: Validation | None = None
    environment: Mapping[str, Any] = field(default_factory=dict)
    timings: Mapping[str, float | None] = field(default_factory=dict)
    #: The cost budget the run was given ({max_params, max_flops, max_latency_ms, max_memory_mb}: None = no limit),
    #: the pick within it ({model, reason, tie_broken, closest}) and the Pareto front ({axis, models}) of
    #: (aggregate mean rank, cost[axis]); each row then has ``cost`` and ``within_budget`` (analyzer.budget).
    budget: Mapping[str, Any] | None = None
    recommendation: Mapping[str, Any] | None = None
    pareto: Mapping[str, Any] | None = None
    #: Where the result was loaded from or saved to (not serialised).
    run_dir: Path | None = field(default=None, compare=False, metadata={"transient": True})

    # ------------------------------------------------------------------ (de)serialisation
    def to_dict(self) -> dict[str, Any]:
        """The report.json object: plain JSON types only, NaN/inf written as null."""
        return {"schema_version": SCHEMA_VERSION, **super().to_dict()}

    @classmethod
    def from_dict(cls, data: Any, where: str = "report.json") -> RankingResult:
        """Rebuild a result from :meth:`to_dict` output (a decoded report.json; ``where``: its name in messages).

        Reads every version in :data:`READABLE_VERSIONS`. Optional sections missing from an older or hand-made
        report are filled with their empty value; a metric that only appears in the scores is added as a
        higher-is-better label metric; the ranking is put best first. Anything else that is not a report raises
        :class:`ReportError` naming ``where``, the problem and the fix.
        """
        if not isinstance(data, dict):
            raise ReportError(f"{where} is not a ranking report: its top level is not a JSON object", _FIX)
        version = data.get("schema_version")
        if version not in READABLE_VERSIONS:
            raise ReportError(
                f"{where} has schema_version {version!r}; this analyzer reads version(s) "
                f"{', '.join(map(str, READABLE_VERSIONS))}",
                "open it with the analyzer version that wrote it, or re-run `python -m analyzer rank` with this "
                "version to regenerate the report",
            )
        ranking = data.get("ranking")
        if not isinstance(ranking, list):
            raise ReportError(f"{where} has no 'ranking' list", _FIX)
        seen: set[str] = set()
        for i, row in enumerate(ranking):
            if not isinstance(row, dict) or not {"model", "rank", "scores"} <= row.keys():
                raise ReportError(f"{where}: ranking entry {i} lacks one of 'model', 'rank', 'scores'", _FIX)
            check_row(row, i, seen, where, _FIX)
        try:
            result = super().from_dict({k: v for k, v in data.items() if v is not None}, where)
        except SchemaError as exc:
            raise ReportError(f"{where} is not a ranking report this analyzer reads: {exc}", _FIX) from exc
        return result._normalised()

    def _normalised(self) -> RankingResult:
        """Best first (unranked last, in report order), and every scored name listed among the metrics."""
        order = sorted(
            range(len(self.ranking)),
            key=lambda i: (math.inf if self.ranking[i].rank is None else self.ranking[i].rank, i),
        )
        names = {m.name for m in self.metrics}
        extra = dict.fromkeys(n for row in self.ranking for n in row.scores if n not in names)
        return dataclasses.replace(
            self,
            ranking=[self.ranking[i] for i in order],
            metrics=[*self.metrics, *(MetricEntry(name=n, kind="label") for n in extra)],
        )

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
        return dataclasses.replace(cls.from_dict(data, str(path)), run_dir=path.parent)

    # ------------------------------------------------------------------ views
    @property
    def models(self) -> list[str]:
        """Ranked models, best first."""
        return [row.model for row in self.ranking]

    def row(self, model: str) -> RankingRow | None:
        """The ranking row of ``model``, None when it was not ranked."""
        return next((row for row in self.ranking if row.model == model), None)

    @property
    def display_names(self) -> dict[str, str]:
        """``{model spec: short unique name}`` for every candidate the report mentions (ranked, failed, skipped,
        with a spectrum); tables and charts show these, and list the full specs once (see :mod:`analyzer.naming`)."""
        rows: list[Skipped | Failed | RankingRow] = [*self.ranking, *self.failed, *self.skipped]
        return short_names(list(dict.fromkeys([*(row.model for row in rows), *self.spectrum])))

    def metric_names(self, kind: str | None = None) -> list[str]:
        """Metric names in report order, optionally only one ``kind`` ("label", "data_free", "baseline")."""
        return [m.name for m in self.metrics if kind is None or m.kind == kind]

    def scored_metric_names(self) -> list[str]:
        """The metrics of the run that are not baselines, in report order."""
        return [m.name for m in self.metrics if m.kind != BASELINE_KIND]

    def metric(self, name: str) -> MetricEntry:
        """The metrics entry called ``name``; an unknown name lists the valid ones."""
        for m in self.metrics:
            if m.name == name:
                return m
        raise ReportError(
            f"the report has no metric {name!r}", f"choose one of {', '.join(self.metric_names())}"
        )

    # ------------------------------------------------------------------ judgements every view shares
    @property
    def aggregate_metrics(self) -> list[str]:
        """The metrics whose mean rank is the aggregate (every label metric when the report does not say)."""
        names = list(self.aggregate.metrics)
        flagged = [m.name for m in self.metrics if m.in_aggregate]
        return names or flagged or self.metric_names("label")

    def top_tie(self) -> list[str]:
        """The candidates tied for first, best first; one model when the top is clear, none when nothing ranked.

        With a bootstrap, the one confidence rule decides: its ``tied_top``
        (:func:`analyzer.confidence.tie_state`), with any exact tie for rank 1. Without: candidates whose
        aggregate mean rank is within :meth:`tie_margin` of the best (an exact tie, or less than one place in one
        aggregate metric apart, which only averaged or missing ranks produce).
        """
        scores = {e.model: e.aggregate_score for e in self.ranking if e.aggregate_score is not None}
        if not scores:
            return [self.ranking[0].model] if self.ranking else []
        if self.bootstrap is not None and self.bootstrap.tied_top:
            tied = set(self.bootstrap.tied_top) | {e.model for e in self.ranking if e.rank == 1}
        else:
            best = next(iter(scores.values()))
            tied = {m for m, score in scores.items() if score - best < self.tie_margin()}
        return [m for m in self.models if m in tied]

    def not_ruled_out(self) -> list[str]:
        """Runners-up the bootstrap could not rule out of a tie with the leader (the rule's middle state), best
        first; empty without a bootstrap."""
        tied = set(self.top_tie())
        open_ = set(self.bootstrap.not_ruled_out if self.bootstrap else ()) - tied
        return [m for m in self.models if m in open_]

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
        score = {e.model: e.aggregate_score for e in self.ranking}

        def mean_rank(model: str) -> str:
            value = score.get(model)
            return "no mean rank" if value is None else f"mean rank {value:.2f}"

        if len(tied) > 1:
            listed = ", ".join(names[m] for m in tied[:-1]) + f" and {names[tied[-1]]}"
            text = f"Tied: {listed} ({', '.join(mean_rank(m) for m in tied)})"
        elif self.bootstrap is None or not self.bootstrap.tied_top:
            text = f"Recommendation: {names[tied[0]]} ({mean_rank(tied[0])})"
        else:
            text = self._sure_pick(tied[0], mean_rank(tied[0]))
        if runner is not None:
            text += f"; runner-up {names[runner]} ({mean_rank(runner)})"
        return f"{text}. {self.basis()}"

    def _sure_pick(self, pick: str, mean_rank: str) -> str:
        """The headline's lead when the bootstrap found no tie: "Likely best" while a runner-up is not ruled out,
        else "Clear", with the pick's P(best) over the resamples used."""
        names, p_best = self.display_names, {e.model: e.p_best for e in self.ranking}
        n = self.bootstrap.n_resamples if self.bootstrap else 0
        share = p_best.get(pick)
        text = f"{names[pick]}, best in {0.0 if share is None else share:.0%} of {n} resamples ({mean_rank})"
        open_ = self.not_ruled_out()
        if not open_:
            return f"Clear: {text}"
        shown = ", ".join(f"{names[m]} ({p_best.get(m) or 0.0:.0%})" for m in open_)
        return f"Likely best: {text}; {shown} not ruled out"

    def basis(self) -> str:
        """Which metrics the recommendation relied on: the aggregate's members, e.g. ``Relied on the mean rank of
        logme, knn, ncti, sfda.``"""
        scored = {m for row in self.ranking for m, value in row.scores.items() if value is not None}
        members = [m for m in self.aggregate_metrics if m in scored]
        missing = [m for m in self.aggregate_metrics if m not in scored]
        unscored = f" ({', '.join(missing)} scored no candidate)" if missing else ""
        if not members:
            return f"Relied on no metric{unscored}."
        if len(members) == 1:
            return f"Relied on {members[0]} alone{unscored}."
        return f"Relied on the mean rank of {', '.join(members)}{unscored}."

    def few_per_class_note(self) -> str | None:
        """With few images per class, which column to trust over the aggregate and whether it agrees with the pick.

        The rule and its evidence are the measured record's (:func:`analyzer.metric_record.few_per_class`): below
        ``below`` images per class (the dataset's mean, ``n_samples / n_classes``) the aggregate was not measured
        to rank well and the ``trust`` metric (kNN) was the best single metric. None when the dataset has enough
        images per class, the aggregate is that metric alone, or nothing was ranked.
        """
        view = few_per_class_view(self)
        return None if view is None else view[0]

    def few_per_class_agrees(self) -> bool | None:
        """Whether the metric :meth:`few_per_class_note` says to trust ranks the pick first (None: no note; False
        too when it was not scored), so a view can warn only when it does not."""
        view = few_per_class_view(self)
        return None if view is None else view[1]

    def mean_agreement(self) -> float | None:
        """Mean pairwise Kendall's tau between the aggregate metrics' rankings (1 = identical orders).

        Taken from the ranking's ``agreement`` block; None with fewer than :data:`MIN_AGREEMENT_CANDIDATES`
        candidates or fewer than two aggregate metrics.
        """
        used = [n for n in self.aggregate_metrics if n in self.agreement.metrics]
        taus = [self.agreement.tau(a, b) for i, a in enumerate(used) for b in used[i + 1 :]]
        values = [t for t in taus if t is not None]
        return float(np.mean(values)) if values else None

    def spectrum_warnings(self) -> dict[str, str]:
        """``{model: warning}`` for every model most of whose analysed layers sit outside weightwatcher's 2-6 band.

        Its (weighted) alpha is then not a sign of good training, so no view lets it "win" on alpha unwarned.
        Counts the layers' ``flag`` as :func:`analyzer.spectrum.alpha_flag` wrote it.
        """
        out: dict[str, str] = {}
        names = self.display_names
        for model, entry in self.spectrum.items():
            layers, outside = entry.layers, entry.outside_band()
            if layers and 2 * len(outside) > len(layers):
                mean = entry.alpha
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
                if entry.aggregate_score is not None:
                    out[entry.model] = -float(entry.aggregate_score)
            return out
        sign = 1.0 if self.metric(name).higher_is_better else -1.0
        for entry in self.ranking:
            value = entry.scores.get(name)
            if value is not None and math.isfinite(value):
                out[entry.model] = sign * float(value)
        return out

    # ------------------------------------------------------------------ validation
    def with_validation(self, truth: Mapping[str, float]) -> RankingResult:
        """This result with its ``validation`` block against ``truth`` ({model: accuracy}): every metric, baseline
        and the aggregate compared (statistics in :func:`analyzer.validation.validation_block`)."""
        return dataclasses.replace(self, validation=validation_block(self, dict(truth)))
