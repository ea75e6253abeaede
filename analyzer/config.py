"""The resolved configuration of a ranking run: flags and ``--config FILE`` (TOML) are the same thing.

A TOML file holds the same keys as the ``rank`` flags (dashes or underscores), e.g.::

    data = "../shared/benchmarks/notmnist/target_images"
    models = ["torchscript:../shared/benchmarks/notmnist/models/cifar10_resnet20.pt", "..."]
    metrics = ["logme", "knn", "sfda", "tmi", "alpha"]
    n_bootstrap = 200
    seed = 0
    [metric_params.knn]
    k = 10
    max_params = 300000     # optional cost budget: also max_flops, max_latency_ms, max_memory_mb
    pareto_axis = "flops"   # the cost the Pareto front is drawn against (default latency_ms)
    [executor]              # optional: where the work runs (default: in this process)
    kind = "ray"
    address = "auto"        # or "HOST:6379", "ray://HOST:10001"; left out: a local Ray instance

Flags given on the command line override the file. The report records :meth:`RankConfig.to_dict`, so a study can
be re-run exactly with ``rank --config`` on a file holding that dict.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from analyzer.budget import Budget, check_budget, check_pareto_axis
from analyzer.errors import ConfigError
from analyzer.inputs import read_user_text
from analyzer.limits import MAX_BATCH_SIZE, MAX_N_BOOTSTRAP, MAX_SEED, check_range

__all__ = [
    "ConfigError",
    "RankConfig",
    "check_max_per_class",
    "load_config_file",
    "resolve_config",
    "split_list",
]


def check_max_per_class(value: Any, *, origin: str = "max_per_class") -> int | None:
    """The one rule for the subsample size, wherever it comes from: None, or an integer of at least 1.

    (Classes of a single sample are then reported by the dataset, and a dataset that no label-based metric can
    score is refused before extraction by :func:`analyzer.datasets.require_classes`.)
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(
            f"{origin} must be a whole number, got {value!r} ({type(value).__name__})",
            "pass --max-per-class N (or `max_per_class = N` in the config file, without quotes)",
        )
    if value < 1:
        raise ConfigError(
            f"{origin} must be at least 1, got {value}", "pass --max-per-class 1 or more, or omit it"
        )
    return value


@dataclass
class RankConfig:
    """Everything a ranking run depends on.

    ``models``: candidate specs. ``metrics``: None = the defaults of :mod:`analyzer.ranking`. ``aggregate``: the
    metrics averaged into the aggregate rank (None = the label-based ones among ``metrics``). ``n_bootstrap``:
    resamples for p_best and rank intervals (0 disables). ``bootstrap_fraction``: share of each class per
    resample. ``bootstrap_early_stop``: stop the bootstrap once P(best) is settled (:mod:`analyzer.ranking.stopping`; on
    by default).
    ``metric_params``: {metric: {param: value}}. ``spectrum_timeout``: seconds per weightwatcher run.
    """

    data: str | None = None
    models: list[str] = field(default_factory=list)
    metrics: list[str] | None = None
    aggregate: list[str] | None = None
    name: str | None = None
    out: str | None = None
    cache_dir: str | None = None
    device: str | None = None
    batch_size: int = 64
    max_per_class: int | None = None
    split: str | None = None
    seed: int = 0
    n_bootstrap: int = 200
    bootstrap_fraction: float = 0.8
    bootstrap_early_stop: bool = True
    ground_truth: str | None = None
    spectrum_timeout: float = 600.0
    metric_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    skip_bad: bool = False
    image_column: str = "image"
    label_column: str = "label"
    executor: dict[str, Any] = field(default_factory=lambda: {"kind": "local"})
    #: the cost budget (analyzer.budget: None = no limit) and the cost axis of the Pareto front
    max_params: int | None = None
    max_flops: int | None = None
    max_latency_ms: float | None = None
    max_memory_mb: float | None = None
    pareto_axis: str = "latency_ms"

    def budget(self) -> Budget:
        """The cost budget these limits make (:class:`analyzer.budget.Budget`)."""
        return Budget(self.max_params, self.max_flops, self.max_latency_ms, self.max_memory_mb)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as recorded in report.json (plain types)."""
        return asdict(self)

    def check(self) -> RankConfig:
        """Raise ConfigError for a config that cannot run (a value of the wrong type or out of range); returns self."""
        self._check_types()
        if not self.data:
            raise ConfigError("no dataset given", "pass --data DATA (or `data = ...` in the config file)")
        if not self.models:
            raise ConfigError(
                "no candidate models given",
                "pass --models SPEC[,SPEC...] (or `models = [...]` in the config file)",
            )
        if self.batch_size < 1:
            raise ConfigError(
                f"batch size must be at least 1, got {self.batch_size}", "pass --batch-size 1 or more"
            )
        # the shared bounds of analyzer.limits (the same numbers every command checks)
        check_range(self.batch_size, flag="--batch-size", low=1, high=MAX_BATCH_SIZE)
        check_range(
            self.n_bootstrap, flag="--n-bootstrap", low=0, high=MAX_N_BOOTSTRAP, what="0 = no bootstrap"
        )
        if self.seed is not None:
            check_range(self.seed, flag="--seed", low=0, high=MAX_SEED)
        if not 0.1 <= self.bootstrap_fraction < 1.0:
            raise ConfigError(
                f"bootstrap fraction must be in [0.1, 1), got {self.bootstrap_fraction}",
                "pass e.g. --bootstrap-fraction 0.8",
            )
        for name in ("metrics", "aggregate"):
            if getattr(self, name) == []:  # `--metrics ","` or `metrics = []`: None means the defaults
                raise ConfigError(
                    f"no metric given in {name} ({name} is empty)",
                    f"name at least one, e.g. --{name} logme,knn, or leave {name} out for the defaults",
                )
        check_max_per_class(self.max_per_class)
        if self.spectrum_timeout <= 0:
            raise ConfigError(
                f"spectrum_timeout must be positive, got {self.spectrum_timeout}",
                "pass e.g. --spectrum-timeout 600",
            )
        self.executor = check_executor_settings(self.executor)
        check_budget(self.budget())
        check_pareto_axis(self.pareto_axis)
        return self

    def _check_types(self) -> None:
        """Every value has its field's type: a TOML file can hold ``seed = "x"`` or ``max_per_class = 2.5``."""
        for name, kinds, shown in _TYPES:
            value = getattr(self, name)
            if value is None and name in _OPTIONAL:
                continue
            ok = isinstance(value, kinds) and not (isinstance(value, bool) and bool not in kinds)
            if ok and isinstance(value, list):
                ok = all(isinstance(v, str) for v in value)
            if ok and name == "metric_params":
                ok = all(isinstance(k, str) and isinstance(v, dict) for k, v in value.items())
            if not ok:
                raise ConfigError(
                    f"{name} must be {shown}, got {value!r} ({type(value).__name__})",
                    f"write {name} as {shown} in the config file (or pass --{name.replace('_', '-')})",
                )


#: Keys of the ``[executor]`` table and the type each must have.
EXECUTOR_KEYS: dict[str, type | tuple[type, ...]] = {
    "kind": str,
    "address": str,
    "connect_timeout": (int, float),
    "max_retries": int,
    "num_cpus": int,
    "num_gpus": int,
}


def check_executor_settings(settings: str | dict[str, Any] | None) -> dict[str, Any]:
    """Validate an ``[executor]`` table (``"ray"`` alone is short for ``{kind = "ray"}``); returns it with a kind."""
    if settings is None:
        settings = {}
    short = isinstance(settings, str)  # `executor = "dask"`: the fix speaks of that form, not of a `kind` key
    if isinstance(settings, str):
        settings = {"kind": settings}
    if not isinstance(settings, dict):
        raise ConfigError(
            f"executor must be a table, got {settings!r}", 'write [executor] with kind = "local" or "ray"'
        )
    for key, value in settings.items():
        if key not in EXECUTOR_KEYS:
            raise ConfigError(
                f"unknown key {key!r} in [executor]", f"valid keys: {', '.join(sorted(EXECUTOR_KEYS))}"
            )
        if isinstance(value, bool) or not isinstance(value, EXECUTOR_KEYS[key]):
            raise ConfigError(f"[executor] {key} has the wrong type: {value!r}", "check the config file")
    resolved = {"kind": "local", **settings}
    if resolved["kind"] not in ("local", "ray"):
        raise ConfigError(
            f"unknown executor {resolved['kind']!r}",
            'write executor = "local" (the default) or "ray" (or kind = ... in an [executor] table)'
            if short
            else 'use kind = "local" (the default) or "ray" in [executor] (or --executor local|ray)',
        )
    if resolved["kind"] == "local" and len(resolved) > 1:
        extra = sorted(set(resolved) - {"kind"})
        flags = " (--ray-address)" if "address" in extra else ""
        raise ConfigError(
            f"[executor] {', '.join(extra)}{flags} only apply to the Ray executor, but the executor is local",
            'pass --executor ray with --ray-address (or kind = "ray" in [executor]), or drop '
            + ("--ray-address / " if flags else "")
            + "those keys",
        )
    return resolved


_FIELDS = {f.name for f in fields(RankConfig)}
#: (field, accepted Python types, how the message names them); bool is refused unless listed.
_TYPES: tuple[tuple[str, tuple[type, ...], str], ...] = (
    ("data", (str,), "a string"),
    ("models", (list,), "a list of model spec strings"),
    ("metrics", (list,), "a list of metric names"),
    ("aggregate", (list,), "a list of metric names"),
    ("name", (str,), "a string"),
    ("out", (str,), "a directory path"),
    ("cache_dir", (str,), "a directory path"),
    ("device", (str,), "a device string such as cpu or cuda"),
    ("batch_size", (int,), "a whole number"),
    ("max_per_class", (int,), "a whole number"),
    ("split", (str,), "a string"),
    ("seed", (int,), "a whole number"),
    ("n_bootstrap", (int,), "a whole number"),
    ("bootstrap_fraction", (int, float), "a number"),
    ("bootstrap_early_stop", (bool,), "true or false"),
    ("ground_truth", (str,), "a CSV file path"),
    ("spectrum_timeout", (int, float), "a number of seconds"),
    ("metric_params", (dict,), "a table of tables ([metric_params.knn] k = 10)"),
    ("skip_bad", (bool,), "true or false"),
    ("image_column", (str,), "a column name"),
    ("label_column", (str,), "a column name"),
    ("max_params", (int,), "a whole number of parameters"),
    ("max_flops", (int,), "a whole number of FLOPs per image"),
    ("max_latency_ms", (int, float), "a number of milliseconds"),
    ("max_memory_mb", (int, float), "a number of MiB"),
    ("pareto_axis", (str,), "latency_ms, flops or params"),
)
_OPTIONAL = {
    "data",
    "metrics",
    "aggregate",
    "name",
    "out",
    "cache_dir",
    "device",
    "max_per_class",
    "split",
    "ground_truth",
    "max_params",
    "max_flops",
    "max_latency_ms",
    "max_memory_mb",
}


def split_list(value: str | list[str] | None) -> list[str] | None:
    """'a,b , c' -> ['a', 'b', 'c']; lists pass through; None stays None."""
    if value is None:
        return None
    items = value if isinstance(value, list) else str(value).split(",")
    return [str(v).strip() for v in items if str(v).strip()]


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML config file into RankConfig keys; an unknown key names the valid ones.

    Relative ``data``, ``ground_truth``, ``out`` and ``cache_dir`` paths are taken relative to the file.
    """
    path = Path(path)
    text = read_user_text(path, what="config file", fix="check the path given to --config", kind=ConfigError)
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}", "fix the syntax (see toml.io)"
        ) from exc
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in _FIELDS:
            raise ConfigError(f"unknown key {key!r} in {path}", f"valid keys: {', '.join(sorted(_FIELDS))}")
        values[name] = value
    for name in ("models", "metrics", "aggregate"):
        if isinstance(values.get(name), str | list):
            values[name] = split_list(values[name])
    for name in ("data", "ground_truth", "out", "cache_dir"):
        value = values.get(name)
        if isinstance(value, str) and ":" not in value and not Path(value).is_absolute():
            values[name] = str((path.parent / value).resolve())
    return values


def resolve_config(file_values: dict[str, Any], flag_values: dict[str, Any]) -> RankConfig:
    """Merge: defaults < config file < flags that were given (not None). Returns a checked RankConfig."""
    merged: dict[str, Any] = dict(file_values)
    for key, value in flag_values.items():
        if key in _FIELDS and value is not None:
            merged[key] = value
    # --executor/--ray-address override the file's [executor] keys one by one, keeping its other settings.
    file_executor = file_values.get("executor")
    if isinstance(flag_values.get("executor"), dict) and isinstance(file_executor, (dict, str)):
        base = {"kind": file_executor} if isinstance(file_executor, str) else dict(file_executor)
        if flag_values["executor"].get("kind") == "local":
            base = {}  # the flag asks for the in-process executor: the file's Ray settings no longer apply
        merged["executor"] = {**base, **flag_values["executor"]}
    for name in ("models", "metrics", "aggregate"):
        if isinstance(merged.get(name), str | list):
            merged[name] = split_list(merged[name])
    if merged.get("models") is None:
        merged["models"] = []
    try:
        config = RankConfig(**merged)
    except TypeError as exc:  # a wrong type in the file
        raise ConfigError(f"bad config value: {exc}", "check the config file against `rank --help`") from exc
    return config.check()
