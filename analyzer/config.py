"""A rank request from flags and a ``--config FILE`` (TOML): the same keys, the file first, flags over it.

A TOML file holds the same keys as the ``rank`` flags (dashes or underscores), e.g.::

    data = "../shared/benchmarks/notmnist/target_images"
    models = ["torchscript:../shared/benchmarks/notmnist/models/cifar10_resnet20.pt", "..."]
    metrics = ["logme", "knn", "sfda", "tmi", "alpha"]
    n_bootstrap = 200
    seed = 0
    [metric_params.knn]
    k = 10
    [executor]              # optional: where the work runs (default: in this process)
    kind = "ray"
    address = "auto"        # or "HOST:6379", "ray://HOST:10001"; left out: a local Ray instance

The keys are the fields of :class:`analyzer.request.RankRequest`, which checks every value. The report records
:meth:`RankRequest.to_dict`, so a study can be re-run exactly with ``rank --config`` on a file holding that dict.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from analyzer.errors import ConfigError
from analyzer.inputs import read_user_text
from analyzer.request import RankRequest, check_executor_settings, check_max_per_class, split_list

__all__ = [
    "ConfigError",
    "check_executor_settings",
    "check_max_per_class",
    "load_config_file",
    "resolve_config",
    "split_list",
]

#: The file's paths that are taken relative to the file (unless absolute or a ``prefix:`` spec).
_RELATIVE = ("data", "ground_truth", "out", "cache_dir")


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML config file into RankRequest keys; an unknown key names the valid ones.

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
    valid = RankRequest.field_names()
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.replace("-", "_")
        if name not in valid:
            raise ConfigError(f"unknown key {key!r} in {path}", f"valid keys: {', '.join(sorted(valid))}")
        values[name] = value
    for name in _RELATIVE:
        value = values.get(name)
        if isinstance(value, str) and ":" not in value and not Path(value).is_absolute():
            values[name] = str((path.parent / value).resolve())
    return values


def resolve_config(file_values: dict[str, Any], flag_values: dict[str, Any]) -> RankRequest:
    """Merge: defaults < config file < flags that were given (not None). Returns the checked RankRequest."""
    valid = set(RankRequest.field_names())
    merged: dict[str, Any] = dict(file_values)
    for key, value in flag_values.items():
        if key in valid and value is not None:
            merged[key] = value
    # --executor/--ray-address override the file's [executor] keys one by one, keeping its other settings.
    file_executor = file_values.get("executor")
    if isinstance(flag_values.get("executor"), dict) and isinstance(file_executor, dict | str):
        base = {"kind": file_executor} if isinstance(file_executor, str) else dict(file_executor)
        if flag_values["executor"].get("kind") == "local":
            base = {}  # the flag asks for the in-process executor: the file's Ray settings no longer apply
        merged["executor"] = {**base, **flag_values["executor"]}
    return RankRequest(**merged)
