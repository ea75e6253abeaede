"""The rank request: what a ranking run is asked to do, one frozen object checked in one place (see
:mod:`analyzer.request`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any

from analyzer.budget import DEFAULT_PARETO_AXIS, LIMITS, PARETO_AXES, Budget, check_budget
from analyzer.defaults import BASELINES, DEFAULT_AGGREGATE, DEFAULT_METRICS
from analyzer.errors import ConfigError
from analyzer.outputs import check_not_empty
from analyzer.request import bounds
from analyzer.request.checks import (
    MAX_PER_CLASS_OPTION,
    Option,
    RequestError,
    check_executor_settings,
    check_metric_names,
    check_metric_params,
    default_metric_names,
    metric_kind,
    names,
    number,
    option,
    switch,
    text,
    whole,
)


@dataclass(frozen=True)
class RankRequest:
    """Everything a ranking run depends on; an instance is always valid (checked as it is constructed).

    Lists are kept as tuples, ``metrics``/``aggregate`` None mean the defaults (:func:`default_metric_names`; the
    aggregate: every label metric asked for but TMI and PED). :meth:`to_dict` is what the report records, so
    ``rank --config`` on a file holding it re-runs the study.
    """

    data: str | None = text(
        None,
        "dataset: image folder, .csv/.jsonl (path,label), .npz, a save_to_disk directory, or sklearn:digits",
        shown="a dataset spec",
    )
    models: tuple[str, ...] = option(
        factory=tuple,
        kinds=(tuple,),
        shown="a list of model spec strings",
        help="model specs, comma-separated (timm:NAME, torchscript:PATH, ...), or @file.txt with one per line",
    )
    metrics: tuple[str, ...] | None = names(
        "comma-separated metrics (default: logme,knn,ncti,sfda,tmi,ped and alpha; the aggregate takes "
        "logme,knn,ncti,sfda)"
    )
    aggregate: tuple[str, ...] | None = names(
        "metrics averaged into the aggregate rank (default: the label-based ones except tmi and ped, which are "
        "shown beside it)"
    )
    name: str | None = text(None, "run name (default: the dataset's name)")
    out: str | None = text(
        None, "output directory (default: <cache>/runs/<timestamp>-<name>/)", shown="a path"
    )
    force: bool = switch(False, "let --out replace report files the analyzer did not write there")
    cache_dir: str | None = text(
        None, "cache directory (default: $ANALYZER_CACHE_DIR or data_cache/)", shown="a path"
    )
    device: str | None = text(
        None, "cpu or cuda (default: cuda when available)", shown="a device such as cpu or cuda"
    )
    batch_size: int = whole(64, "images per forward pass (default 64)", low=1, high=bounds.MAX_BATCH_SIZE)
    max_per_class: int | None = option(None, spec=MAX_PER_CLASS_OPTION)
    split: str | None = text(None, "keep only this split (a split column or sub-folder)")
    seed: int = whole(
        0, "seed for subsampling, the bootstrap and stochastic metrics (default 0)", high=bounds.MAX_SEED
    )
    n_bootstrap: int = whole(
        200,
        "bootstrap resamples for p_best and rank intervals (default 200; 0: none)",
        high=bounds.MAX_N_BOOTSTRAP,
        what="0 = no bootstrap",
    )
    # Below 1: a fraction of 1 draws the full set every time, and the "bootstrap" would measure nothing.
    bootstrap_fraction: float = number(
        0.8, "share of each class per resample (default 0.8)", low=0.1, below=1.0
    )
    bootstrap_early_stop: bool = switch(
        True,
        "score the resamples in rounds of 60 and stop once the pick is settled: every P(best) on a known side of "
        "the 5 %% tie line and the leader's within 0.02; the report records the resamples used (default: on; "
        "--no-bootstrap-early-stop scores all of them)",
    )
    ground_truth: str | None = text(
        None, "CSV model,accuracy[,dataset]: validate the ranking", shown="a CSV path"
    )
    spectrum_timeout: float = number(
        600.0, "seconds per weightwatcher run (default 600)", above=0.0, high=bounds.MAX_SPECTRUM_TIMEOUT
    )
    metric_params: Mapping[str, Mapping[str, Any]] = option(
        factory=dict,
        kinds=(dict,),
        shown="a table of tables ([metric_params.knn] k = 10)",
        help="{metric: {param: value}} (config file only: [metric_params.knn] k = 10)",
        flag=False,
    )
    skip_bad: bool = switch(
        False, "skip unreadable images and empty labels (listed as skipped) instead of stopping"
    )
    image_column: str = text(
        "image",
        "column of images or image paths in a CSV/JSONL/Hugging Face dataset (default: path or image)",
    )
    label_column: str = text(
        "label", "column of class labels in a CSV/JSONL/Hugging Face dataset (default: label)"
    )
    executor: Mapping[str, Any] = option(
        factory=lambda: {"kind": "local"},
        kinds=(dict, str),
        shown='a table ([executor] kind = "ray")',
        help="where the work runs (config file: [executor] kind, address, ...; flags: --executor, --ray-address)",
        flag=False,
    )
    num_workers: int | None = whole(
        None,
        "DataLoader processes decoding images (default: from the CPU count; 0: none)",
        high=bounds.MAX_WORKERS,
    )

    # The cost budget (analyzer.budget): the recommendation is the best candidate within every limit set.
    max_params: int | None = whole(
        None,
        "budget: at most this many parameters (the recommendation stays within it)",
        low=None,  # positive: analyzer.budget's rule (check_budget, in the request's rules)
        high=bounds.MAX_PARAMS,
    )
    max_flops: int | None = whole(
        None,
        "budget: at most this many FLOPs per image at the model's input size",
        low=None,
        high=bounds.MAX_FLOPS,
    )
    max_latency_ms: float | None = number(
        None,
        "budget: at most this batch-1 latency in milliseconds, on this run's device",
        high=bounds.MAX_LATENCY_MS,
    )
    max_memory_mb: float | None = number(
        None,
        "budget: at most this peak memory of a forward pass, in MiB",
        high=bounds.MAX_MEMORY_MB,
    )
    pareto_axis: str = text(
        DEFAULT_PARETO_AXIS,
        f"the cost the Pareto front is drawn against: {' | '.join(PARETO_AXES)} (default {DEFAULT_PARETO_AXIS})",
    )

    def __post_init__(self) -> None:
        for name in ("models", "metrics", "aggregate"):  # 'a, b' or a list: a tuple of stripped names
            value = getattr(self, name)
            if isinstance(value, str | list | tuple):
                items = value.split(",") if isinstance(value, str) else value
                kept = [
                    v.strip() if isinstance(v, str) else v
                    for v in items
                    if not isinstance(v, str) or v.strip()
                ]
                object.__setattr__(
                    self,
                    name,
                    tuple(
                        dict.fromkeys(kept)
                        if name == "models" and all(isinstance(v, str) for v in kept)
                        else kept
                    ),
                )
        if self.executor is None:
            object.__setattr__(self, "executor", {"kind": "local"})
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None or _default(f) is not None:
                f.metadata["option"].check(f.name, value)
        _check_rules(self)

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in fields(cls)]

    @classmethod
    def options(cls) -> dict[str, tuple[Option, Any]]:
        """{field: (its Option, its default)} in declaration order (``rank``'s flags are made from it)."""
        return {f.name: (f.metadata["option"], _default(f)) for f in fields(cls)}

    def to_dict(self) -> dict[str, Any]:
        """The request as recorded in report.json (plain JSON types: lists, dicts)."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = {k: dict(v) if isinstance(v, Mapping) else v for k, v in value.items()}
            out[f.name] = value
        return out

    def replace(self, **changes: Any) -> RankRequest:
        """A copy with ``changes`` (checked again)."""
        return RankRequest(**{**{f.name: getattr(self, f.name) for f in fields(self)}, **changes})

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Every metric to report, in order: the ones asked for (baselines dropped) or the defaults."""
        names = self.metrics if self.metrics is not None else default_metric_names()
        return tuple(n for n in dict.fromkeys(names) if n not in BASELINES)

    @property
    def aggregate_names(self) -> tuple[str, ...]:
        """The metrics averaged into the aggregate rank (a subset of :attr:`metric_names`)."""
        if self.aggregate is not None:
            return tuple(n for n in dict.fromkeys(self.aggregate) if n not in BASELINES)
        names = self.metric_names
        label = [n for n in names if metric_kind(n) == "label"]
        beside = set(DEFAULT_METRICS) - set(
            DEFAULT_AGGREGATE
        )  # the headline metrics shown beside it: TMI, PED
        return tuple([n for n in label if n not in beside] or label or names)

    def budget(self) -> Budget:
        """The cost budget the request sets (:class:`analyzer.budget.Budget`; no field set: no limit)."""
        return Budget.from_mapping({key: getattr(self, key) for key, _ in LIMITS})

    def params(self) -> dict[str, dict[str, Any]]:
        """{metric: its keyword parameters}, ``random_state`` defaulted to the seed for the stochastic ones."""
        import metrics

        params = {n: dict(self.metric_params.get(n, {})) for n in self.metric_names}
        for n in self.metric_names:
            info = metrics.info(n)
            if info.stochastic and "random_state" in info.params:
                params[n].setdefault("random_state", self.seed)
        return params


def _default(f: Field[Any]) -> Any:
    if f.default is not MISSING:
        return f.default
    return f.default_factory() if f.default_factory is not MISSING else None


#: Every fault a request can have, one rule each: (field or "*", rule) -> what it refuses.
RULES: dict[tuple[str, str], str] = {
    ("*", "type"): "a value of the wrong type (a TOML string where a number belongs, a float for a count)",
    ("*", "range"): "a number outside its documented bounds (the MAX_* constants)",
    ("data", "required"): "no dataset",
    ("out", "empty"): "an empty --out (OutputError, analyzer.outputs.check_not_empty)",
    ("models", "required"): "no candidate model",
    ("models", "range"): f"more than {bounds.MAX_MODELS} candidates",
    ("metrics", "empty"): "an empty metric list (None means the defaults)",
    ("aggregate", "empty"): "an empty aggregate list",
    ("metrics", "unknown_metric"): "a metric name that is not registered",
    ("aggregate", "unknown_metric"): "an aggregate metric that is not registered",
    ("aggregate", "not_requested"): "an aggregate metric that is not among the metrics",
    ("metric_params", "unknown_metric"): "parameters for a metric that is not registered",
    ("metric_params", "unknown_param"): "a parameter the metric does not take",
    ("pareto_axis", "unknown_axis"): "a Pareto axis that is not a measured cost",
    ("executor", "unknown_key"): "an [executor] key that does not exist",
    ("executor", "type"): "an [executor] value of the wrong type",
    ("executor", "unknown_executor"): "an executor kind that does not exist",
    ("executor", "local_settings"): "Ray settings with the local executor",
}


def _check_rules(req: RankRequest) -> None:
    """The rules across fields (each field's own type and bounds are checked by its :class:`Option`)."""
    if not req.data:
        raise RequestError(
            "data", "required", "no dataset given", "pass --data DATA (or `data = ...` in the config file)"
        )
    if not req.models:
        raise RequestError(
            "models",
            "required",
            "no candidate models given",
            "pass --models SPEC[,SPEC...] (or `models = [...]` in the config file)",
        )
    check_not_empty(req.out, flag="--out")  # `--out ""` used to fall back to the default place without a word
    if len(req.models) > bounds.MAX_MODELS:
        raise RequestError(
            "models",
            "range",
            f"{len(req.models)} candidate models given, more than {bounds.MAX_MODELS}",
            f"rank at most {bounds.MAX_MODELS} candidates per run (split the list)",
        )
    for name in ("metrics", "aggregate"):
        if getattr(req, name) == ():  # `--metrics ","` or `metrics = []`: None means the defaults
            raise RequestError(
                name,
                "empty",
                f"no metric given in {name} ({name} is empty)",
                f"name at least one, e.g. --{name} logme,knn, or leave {name} out for the defaults",
            )
    if req.metrics is not None:
        check_metric_names(req.metrics)
    if req.aggregate is not None:
        check_metric_names(req.aggregate, field="aggregate")
        missing = [n for n in req.aggregate_names if n not in req.metric_names]
        if missing:
            raise RequestError(
                "aggregate",
                "not_requested",
                f"aggregate metric(s) {', '.join(missing)} are not among the requested metrics",
                f"add them to --metrics or choose the aggregate from {', '.join(req.metric_names)}",
            )
    check_metric_params(req.metric_params)
    try:  # the budget's own rule: every limit set is positive (analyzer.budget)
        check_budget(req.budget())
    except ConfigError as exc:
        key = next(k for k, _ in LIMITS if f"--{k.replace('_', '-')} " in exc.message)
        raise RequestError(key, "range", exc.message, exc.fix or "") from None
    if req.pareto_axis not in PARETO_AXES:
        raise RequestError(
            "pareto_axis",
            "unknown_axis",
            f"unknown Pareto axis {req.pareto_axis!r}",
            f"pass --pareto-axis {' | '.join(PARETO_AXES)} (or pareto_axis = ... in the config file)",
        )
    object.__setattr__(req, "executor", check_executor_settings(req.executor))
