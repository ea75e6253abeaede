"""The building blocks of the request's checks: the error, the per-field Option, metric names, the executor
table and metric parameters. Each fault has one rule (:data:`analyzer.request.RULES`)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from analyzer.defaults import BASELINES, DEFAULT_METRICS
from analyzer.errors import ConfigError
from analyzer.limits import check_range
from analyzer.request.bounds import MAX_PER_CLASS


class RequestError(ConfigError):
    """A rank request that cannot run: ``field`` names the option, ``rule`` the check it failed (see
    :data:`RULES`); the message names the value, the fix says what to give instead (exit code 2)."""

    def __init__(self, field: str, rule: str, message: str, fix: str) -> None:
        self.field = field
        self.rule = rule
        super().__init__(message, fix)


@dataclass(frozen=True)
class Option:
    """How one request field is given and checked: accepted Python types (bool only where listed), how messages
    name them, the bounds (``low``/``high`` inclusive; ``below``: exclusive upper bound; ``above``: exclusive
    lower bound), ``help`` for ``rank --help``, and ``flag`` (False: only in the config file or from Python)."""

    kinds: tuple[type, ...]
    shown: str
    help: str
    low: float | None = None
    high: float | None = None
    above: float | None = None
    below: float | None = None
    flag: bool = True
    say_limit: bool = False  # "must be at least 1" rather than "out of range: it must be from 1 to N"
    what: str = ""  # what a special value means, quoted in the range message ("0 = no bootstrap")

    def check(self, name: str, value: Any, *, origin: str | None = None) -> None:
        """Raise RequestError (rule ``type`` or ``range``) unless ``value`` suits this option; ``origin``: how the
        message names the value (default: the field's name)."""
        shown = origin or name
        flag = f"--{name.replace('_', '-')}"
        where = f"({flag}, or `{name} = ...` in the config file)"
        ok = isinstance(value, self.kinds) and not (isinstance(value, bool) and bool not in self.kinds)
        if ok and isinstance(value, tuple):
            ok = all(isinstance(v, str) for v in value)
        if ok and isinstance(value, float):
            ok = math.isfinite(value)
        if not ok:
            got = f"got {value!r} ({type(value).__name__})"
            raise RequestError(
                name, "type", f"{shown} must be {self.shown}, {got}", f"give {name} as {self.shown} {where}"
            )
        if isinstance(value, bool) or not isinstance(value, int | float):
            return
        low, high = self.low, self.high
        if (
            low is not None
            and high is not None
            and self.above is None
            and self.below is None
            and not self.say_limit
        ):
            # an inclusive range: the message every command gives for it (analyzer.limits, one wording)
            try:
                check_range(value, flag=flag, low=low, high=high, what=self.what)
            except ConfigError as exc:
                raise RequestError(name, "range", exc.message, f"{exc.fix} {where}") from None
            return
        if self.low is not None and value < self.low:
            limit = f"at least {_num(self.low)}"
        elif self.above is not None and value <= self.above:
            limit = f"greater than {_num(self.above)}"
        elif self.high is not None and value > self.high:
            limit = f"at most {_num(self.high)}"
        elif self.below is not None and value >= self.below:
            limit = f"below {_num(self.below)}"
        else:
            return
        raise RequestError(
            name,
            "range",
            f"{shown} must be {limit}, got {value} (accepted: {self.bounds()})",
            f"give {name} a value in {self.bounds()} {where}",
        )

    @property
    def has_bounds(self) -> bool:
        return any(b is not None for b in (self.low, self.high, self.above, self.below))

    def bounds(self) -> str:
        """The accepted range in interval notation, e.g. ``[1, 4096]`` or ``[0.1, 1)``."""
        low = f"[{_num(self.low)}" if self.low is not None else f"({_num(self.above)}"
        high = f"{_num(self.high)}]" if self.high is not None else f"{_num(self.below)})"
        return f"{low}, {high}"


def _num(x: float | None) -> str:
    return "inf" if x is None else str(int(x)) if float(x).is_integer() else str(x)


def option(default: Any = None, *, factory: Any = None, spec: Option | None = None, **kwargs: Any) -> Any:
    """A request field: its default (or ``factory`` for a mutable one) and its :class:`Option` (``spec``, or
    made from ``kwargs``)."""
    meta = {"option": spec or Option(**kwargs)}
    if factory is not None:
        return field(default_factory=factory, metadata=meta)
    return field(default=default, metadata=meta)


def text(default: str | None, help: str, *, shown: str = "a string") -> Any:
    """A string field (a name, a path, a spec)."""
    return option(default, kinds=(str,), shown=shown, help=help)


def names(help: str) -> Any:
    """A list of metric names (None: the defaults)."""
    return option(None, kinds=(tuple,), shown="a list of metric names", help=help)


def whole(default: int | None, help: str, *, high: int, low: int | None = 0, what: str = "") -> Any:
    """A count: a whole number in ``low .. high`` (every count has an upper bound; ``what``: what a special
    value means, quoted when a value is refused)."""
    return option(default, kinds=(int,), shown="a whole number", help=help, low=low, high=high, what=what)


def number(
    default: float | None,
    help: str,
    *,
    low: float | None = None,
    high: float | None = None,
    above: float | None = None,
    below: float | None = None,
) -> Any:
    """A real number within the bounds (inclusive ``low``/``high``, exclusive ``above``/``below``)."""
    spec = Option((int, float), "a number", help, low=low, high=high, above=above, below=below)
    return option(default, spec=spec)


def switch(default: bool, help: str) -> Any:
    """A yes/no field (``--FLAG``/``--no-FLAG``; ``true``/``false`` in the config file)."""
    return option(default, kinds=(bool,), shown="true or false", help=help)


def split_list(value: str | Sequence[str] | None) -> list[str] | None:
    """'a,b , c' -> ['a', 'b', 'c']; lists pass through stripped; None stays None."""
    if value is None:
        return None
    items = value.split(",") if isinstance(value, str) else value
    return [str(v).strip() for v in items if str(v).strip()]


#: The subsample size's rule, shared by the request and every command that opens a dataset.
MAX_PER_CLASS_OPTION = Option(
    (int,),
    "a whole number",
    "stratified subsample: keep at most N samples per class",
    low=1,
    high=MAX_PER_CLASS,
    say_limit=True,
)


def check_max_per_class(value: Any, *, origin: str = "max_per_class") -> int | None:
    """The one rule for the subsample size, wherever it comes from: None, or a whole number in 1 ..
    :data:`MAX_PER_CLASS` (:data:`MAX_PER_CLASS_OPTION`). (Classes of a single sample are then reported by the
    dataset, and a dataset that no label-based metric can score is refused before extraction by
    :func:`analyzer.datasets.require_classes`.)"""
    if value is not None:
        MAX_PER_CLASS_OPTION.check("max_per_class", value, origin=origin)
    return value


def metric_kind(name: str) -> str:
    """A registered metric's kind: ``"label"`` (from features and labels) or ``"data_free"`` (from the weights)."""
    import metrics

    return metrics.info(name).kind


def valid_metric_names() -> list[str]:
    """Every name ``--metrics`` accepts: the registered metrics, of every kind."""
    import metrics

    return metrics.available()


def default_metric_names() -> list[str]:
    """The metrics of a run that names none: :data:`DEFAULT_METRICS` plus every data-free metric (reported
    beside the aggregate)."""
    import metrics

    return [*DEFAULT_METRICS, *metrics.available(kind="data_free")]


def check_metric_names(names: Sequence[str], *, field: str = "metrics") -> list[str]:
    """``names`` deduplicated in order, baselines dropped; an unknown name raises RequestError listing the valid
    ones."""
    valid = valid_metric_names()
    unknown = [n for n in names if n not in valid and n not in BASELINES]
    if unknown:
        raise RequestError(
            field,
            "unknown_metric",
            f"unknown metric(s) {', '.join(map(repr, unknown))} in {field}",
            f"choose from: {', '.join(valid)} (baselines {', '.join(BASELINES)} are always reported)",
        )
    return [n for n in dict.fromkeys(names) if n not in BASELINES]


#: Keys of the ``[executor]`` table and the type each must have.
EXECUTOR_KEYS: dict[str, type | tuple[type, ...]] = {
    "kind": str,
    "address": str,
    "connect_timeout": (int, float),
    "max_retries": int,
    "num_cpus": int,
    "num_gpus": int,
}
#: The executors a request may name.
EXECUTOR_KINDS: tuple[str, ...] = ("local", "ray")


def check_metric_params(metric_params: Mapping[str, Any]) -> None:
    """``[metric_params.NAME]`` tables name registered metrics and only their own parameters."""
    import metrics as metrics_lib
    from metrics._registry import split_params

    for name, params in metric_params.items():
        if not isinstance(name, str) or name not in metrics_lib.available():
            raise RequestError(
                "metric_params",
                "unknown_metric",
                f"metric_params names {name!r}, which is not a metric with parameters",
                f"use [metric_params.NAME] with one of: {', '.join(sorted(metrics_lib.available()))}",
            )
        if not isinstance(params, Mapping):
            raise RequestError(
                "metric_params",
                "type",
                f"metric_params.{name} must be a table of parameters, got {params!r}",
                f"write [metric_params.{name}] with one `param = value` line each",
            )
        try:
            split_params(metrics_lib.info(name), params)
        except ValueError as exc:  # the registry's check: an unknown parameter, with the valid ones
            raise RequestError(
                "metric_params",
                "unknown_param",
                str(exc),
                f"give {name} only the parameters this message lists as valid ([metric_params.{name}])",
            ) from None


def check_executor_settings(settings: str | Mapping[str, Any] | None) -> dict[str, Any]:
    """Validate an ``[executor]`` table (``"ray"`` alone is short for ``{kind = "ray"}``); returns it with a kind."""
    short = isinstance(settings, str)  # `executor = "dask"`: the fix speaks of that form, not of a `kind` key
    if settings is None or isinstance(settings, str):
        settings = {"kind": settings or "local"}
    if not isinstance(settings, Mapping):
        raise RequestError(
            "executor",
            "type",
            f"executor must be a table, got {settings!r}",
            'write [executor] with kind = "local" or "ray" (or pass --executor)',
        )
    for key, value in settings.items():
        if key not in EXECUTOR_KEYS:
            raise RequestError(
                "executor",
                "unknown_key",
                f"unknown key {key!r} in [executor]",
                f"valid keys: {', '.join(sorted(EXECUTOR_KEYS))}",
            )
        if isinstance(value, bool) or not isinstance(value, EXECUTOR_KEYS[key]):
            raise RequestError(
                "executor", "type", f"[executor] {key} has the wrong type: {value!r}", "check the config file"
            )
    resolved = {"kind": "local", **settings}
    if resolved["kind"] not in EXECUTOR_KINDS:
        quoted = " or ".join(f'"{kind}"' for kind in EXECUTOR_KINDS)
        raise RequestError(
            "executor",
            "unknown_executor",
            f"unknown executor {resolved['kind']!r}",
            f"write executor = {quoted} (or kind = ... in an [executor] table)"
            if short
            else f"use --executor {'|'.join(EXECUTOR_KINDS)} (or kind = ... in [executor])",
        )
    if resolved["kind"] == "local" and len(resolved) > 1:
        given = ", ".join(f"{k} {v!r}" for k, v in resolved.items() if k != "kind")
        raise RequestError(
            "executor",
            "local_settings",
            f"Ray settings ({given}) were given but the executor is local",
            'choose the ray executor to use them (--executor ray, or kind = "ray" under [executor]), or remove '
            "them (--ray-address) to rank in this process",
        )
    return resolved
