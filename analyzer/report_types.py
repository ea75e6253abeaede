"""The typed sections of report.json: one frozen record per kind of entry (a leaf module: imports no analyzer code
beyond :mod:`analyzer.jsonable`).

Each class is a :class:`analyzer.jsonable.Record`: its JSON object has one key per field, in field order, so a
new key of report.json is one new field here, with a default (older reports then still read). DESIGN.md ("the
result object and report.json") documents the layout; :class:`analyzer.result.RankingResult` holds these.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from analyzer.errors import ReportError
from analyzer.jsonable import OMIT_NONE, Record

#: The name the aggregate gets in validation rows and agreement tables.
AGGREGATE = "aggregate"
#: Kendall's tau between two rankings needs this many commonly ranked candidates (the ranking's agreement block
#: is null below it: two candidates always give tau = +-1, which says nothing).
MIN_AGREEMENT_CANDIDATES = 3
#: Validation statistics, in the order reports print them (the statistics fields of :class:`ValidationRow`).
VALIDATION_COLUMNS = ("weighted_tau", "kendall_tau", "spearman", "pearson", "top1_regret", "top3_recall")
#: Metric kinds in the report: the registry's ("label", "data_free") and the baselines' ("baseline").
BASELINE_KIND = "baseline"


@dataclass(frozen=True, kw_only=True)
class DatasetInfo(Record):
    """The ranked dataset: ``spec`` as given, ``fingerprint`` (hex), sizes, class names and the samples skipped
    at opening (``[sample id, reason]`` pairs)."""

    spec: str = ""
    name: str | None = None
    fingerprint: str | None = None
    n_samples: int | None = None
    n_classes: int | None = None
    class_names: Sequence[str] = ()
    skipped: Sequence[Sequence[str]] = ()


@dataclass(frozen=True, kw_only=True)
class MetricEntry(Record):
    """One column of the ranking: a metric's ``name`` and ``params``, its direction, its ``kind`` ("label",
    "data_free" or "baseline"), whether it is averaged into the aggregate, and whether it was scored on features
    divided by each candidate's RMS deviation (``rescaled``: :mod:`analyzer.ranking.scale_free`)."""

    name: str
    params: Mapping[str, Any] = field(default_factory=dict)
    higher_is_better: bool = True
    kind: str = "label"
    in_aggregate: bool = False
    rescaled: bool = False


@dataclass(frozen=True, kw_only=True)
class AggregateInfo(Record):
    """How the aggregate is formed: ``method`` ("mean_rank"), its member ``metrics`` and a sentence saying why."""

    method: str = "mean_rank"
    metrics: Sequence[str] = ()
    description: str = ""


@dataclass(frozen=True, kw_only=True)
class RankingRow(Record):
    """One ranked candidate (report.json's ``ranking`` entries, best first).

    ``rank``: 1 = best, tied candidates share the better rank, None when no aggregate metric scored it;
    ``aggregate_score``: its mean rank over the aggregate metrics (lower is better); ``scores`` {metric or
    baseline: raw value or None}; ``metric_ranks`` {metric: competition rank or None}; ``p_best`` and
    ``rank_interval`` (95 %, ``(lo, hi)``) from the bootstrap; ``agree`` / ``disagree``: the metrics whose rank is
    within one place of its position, or not; ``cost`` and ``within_budget`` (:mod:`analyzer.budget`).
    """

    model: str
    rank: int | None
    aggregate_score: float | None = None
    scores: Mapping[str, float | None]
    metric_ranks: Mapping[str, int | None] = field(default_factory=dict)
    num_params: int | None = None
    source_accuracy: float | None = None
    feature_dim: int | None = None
    extraction_seconds: float | None = None
    feature_key: str | None = None
    p_best: float | None = None
    rank_interval: tuple[int, int] | None = None
    agree: Sequence[str] = ()
    disagree: Sequence[str] = ()
    #: The measured cost (:meth:`analyzer.cost.Cost.to_dict`; None: not measured) and whether it fits the budget.
    cost: Mapping[str, Any] | None = None
    within_budget: bool | None = None


@dataclass(frozen=True, kw_only=True)
class Skipped(Record):
    """A (candidate, metric) pair the metric cannot apply to, and why (:class:`metrics.NotApplicable`)."""

    model: str
    metric: str
    reason: str


@dataclass(frozen=True, kw_only=True)
class Failed(Record):
    """A candidate that could not be ranked (``metric`` None: it failed to load or extract), or a metric that
    failed on it with an unexpected error (a bug: ``error`` ends with the traceback's last frames)."""

    model: str
    error: str
    metric: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, kw_only=True)
class Bootstrap(Record):
    """How sure the ranking is: ``n_resamples`` subsets of ``fraction`` of the samples (stratified, ``seed``);
    ``tied_top``: the leader and the runners-up tied with it, ``not_ruled_out``: the runners-up that may still be
    (the rule: :func:`analyzer.confidence.tie_state`); ``statement``: that, in a sentence. With early
    stopping, ``n_requested`` (the resamples asked for) and ``stopping`` (the rule, absent when fewer resamples than
    one round were asked for, so it never ran)."""

    n_resamples: int
    seed: int = 0
    fraction: float = 0.8
    method: str = ""
    tied_top: Sequence[str] = ()
    not_ruled_out: Sequence[str] = ()
    statement: str = ""
    n_requested: int | None = field(default=None, metadata=OMIT_NONE)
    stopping: str | None = field(default=None, metadata=OMIT_NONE)


@dataclass(frozen=True, kw_only=True)
class Agreement(Record):
    """Kendall's tau between the rankings of every pair of ``metrics`` (the aggregate and the baselines
    included): ``kendall_tau[i][j]``, None below :data:`MIN_AGREEMENT_CANDIDATES` common candidates."""

    metrics: Sequence[str] = ()
    kendall_tau: Sequence[Sequence[float | None]] = ()

    def tau(self, a: str, b: str) -> float | None:
        """Tau between the rankings of ``a`` and ``b``; None when either is not in the block."""
        if a not in self.metrics or b not in self.metrics:
            return None
        return self.kendall_tau[self.metrics.index(a)][self.metrics.index(b)]


@dataclass(frozen=True, kw_only=True)
class SpectrumLayer(Record):
    """One analysed weight layer: weightwatcher's power-law ``alpha`` and the rest, and its ``flag``
    (:func:`analyzer.spectrum.alpha_flag`: "ok", "over-trained?" or "under-trained?")."""

    layer_id: int
    name: str = ""
    alpha: float | None = None
    alpha_weighted: float | None = None
    log_spectral_norm: float | None = None
    stable_rank: float | None = None
    flag: str = "ok"


@dataclass(frozen=True, kw_only=True)
class SkippedLayer(Record):
    """A weight layer weightwatcher did not fit, and why."""

    layer_id: int
    name: str = ""
    reason: str = ""


@dataclass(frozen=True, kw_only=True)
class ModelSpectrum(Record):
    """One candidate's weight spectrum: means over its analysed ``layers``, the ``skipped_layers``, and ``esd``
    {layer_id: eigenvalues, largest first} for the plots."""

    alpha: float | None = None
    alpha_weighted: float | None = None
    log_spectral_norm: float | None = None
    stable_rank: float | None = None
    layers: Sequence[SpectrumLayer] = ()
    skipped_layers: Sequence[SkippedLayer] = ()
    esd: Mapping[str, Sequence[float]] = field(default_factory=dict)
    svd_method: str | None = field(default=None, metadata=OMIT_NONE)
    seconds: float | None = field(default=None, metadata=OMIT_NONE)

    def outside_band(self) -> list[SpectrumLayer]:
        """The layers flagged outside weightwatcher's well-trained band."""
        return [x for x in self.layers if x.flag != "ok"]


@dataclass(frozen=True, kw_only=True)
class ValidationRow(Record):
    """How one metric, baseline or the aggregate ordered the candidates against the ground truth, over the
    ``n_models`` candidates with both (statistics None below 3): see :func:`analyzer.validation.validation_block`."""

    metric: str
    n_models: int = 0
    weighted_tau: float | None = None
    kendall_tau: float | None = None
    spearman: float | None = None
    pearson: float | None = None
    top1_regret: float | None = None
    top3_recall: float | None = None

    def statistic(self, column: str) -> float | None:
        """One of :data:`VALIDATION_COLUMNS` by name."""
        if column not in VALIDATION_COLUMNS:
            raise KeyError(f"no validation statistic {column!r}; one of {', '.join(VALIDATION_COLUMNS)}")
        value: float | None = getattr(self, column)
        return value


@dataclass(frozen=True, kw_only=True)
class Validation(Record):
    """The ranking against ground truth: ``truth`` {model: accuracy} and one row per metric, baseline and the
    aggregate."""

    truth: Mapping[str, float] = field(default_factory=dict)
    rows: Sequence[ValidationRow] = ()

    def row(self, metric: str) -> ValidationRow | None:
        """The row of ``metric`` (or of :data:`AGGREGATE`), None when absent."""
        return next((r for r in self.rows if r.metric == metric), None)


def check_row(row: dict[str, Any], i: int, seen: set[str], where: str, fix: str) -> None:
    """A ranking row names a model not listed before, and each score is a number or null: a model listed twice
    validated to a perfect tau, and a string score ended in an internal error."""
    model = row["model"]
    if not isinstance(model, str) or model in seen:
        what = "is not a model spec" if not isinstance(model, str) else "lists it a second time"
        raise ReportError(f"{where}: ranking entry {i} ({model!r}) {what}", f"list each model once; {fix}")
    seen.add(model)
    if not isinstance(row["scores"], dict):
        raise ReportError(f"{where}: ranking entry {i} ('{model}') has 'scores' that is not an object", fix)
    for metric, value in row["scores"].items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise ReportError(
                f"{where}: ranking entry {i} ({model!r}) has a {type(value).__name__} score for {metric!r} "
                f"({value!r}); scores are numbers or null",
                f"write the score as a number (or null where it is missing); {fix}",
            )
