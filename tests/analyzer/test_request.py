"""The rank request: every front end (Python, the config file, the ``rank`` flags, the dashboard's form) builds the
same object and meets the same rule for each fault, before anything is opened."""

from __future__ import annotations

import argparse
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest

from analyzer.cli import main
from analyzer.commands import rank as rank_command
from analyzer.config import load_config_file, resolve_config
from analyzer.dashboard import form
from analyzer.errors import EXIT_USAGE
from analyzer.request import (
    MAX_BATCH_SIZE,
    MAX_N_BOOTSTRAP,
    MAX_SEED,
    RULES,
    RankRequest,
    RequestError,
)

OK = {"data": "sklearn:digits", "models": ("timm:a",)}

#: (request fields, the field and rule refused, a flag list giving the same fault or None, a TOML line or None)
FAULTS: list[tuple[dict[str, Any], str, str, list[str] | None, str | None]] = [
    ({"data": None}, "data", "required", None, None),
    ({"models": ()}, "models", "required", None, "models = []"),
    ({"n_bootstrap": -1}, "n_bootstrap", "range", ["--n-bootstrap", "-1"], "n_bootstrap = -1"),
    (
        {"n_bootstrap": 10**20},
        "n_bootstrap",
        "range",
        ["--n-bootstrap", "100000000000000000000"],
        "n_bootstrap = 100000000000000000000",
    ),
    ({"bootstrap_fraction": 1.0}, "bootstrap_fraction", "range", ["--bootstrap-fraction", "1.0"], None),
    ({"bootstrap_fraction": 0.05}, "bootstrap_fraction", "range", None, "bootstrap_fraction = 0.05"),
    ({"batch_size": 0}, "batch_size", "range", ["--batch-size", "0"], None),
    (
        {"batch_size": MAX_BATCH_SIZE + 1},
        "batch_size",
        "range",
        ["--batch-size", str(MAX_BATCH_SIZE + 1)],
        None,
    ),
    ({"seed": -1}, "seed", "range", ["--seed", "-1"], None),
    ({"seed": MAX_SEED + 1}, "seed", "range", None, "seed = 4294967296"),
    ({"num_workers": -1}, "num_workers", "range", ["--num-workers", "-1"], None),
    ({"max_per_class": 0}, "max_per_class", "range", ["--max-per-class", "0"], "max_per_class = 0"),
    ({"max_per_class": 2.5}, "max_per_class", "type", None, "max_per_class = 2.5"),
    ({"spectrum_timeout": 0.0}, "spectrum_timeout", "range", ["--spectrum-timeout", "0"], None),
    ({"spectrum_timeout": float("nan")}, "spectrum_timeout", "type", ["--spectrum-timeout", "nan"], None),
    ({"seed": "x"}, "seed", "type", None, 'seed = "x"'),
    ({"skip_bad": 1}, "skip_bad", "type", None, "skip_bad = 1"),
    ({"metrics": ()}, "metrics", "empty", ["--metrics", ","], "metrics = []"),
    ({"metrics": ("lgome",)}, "metrics", "unknown_metric", ["--metrics", "lgome"], None),
    ({"aggregate": ("nope",)}, "aggregate", "unknown_metric", ["--aggregate", "nope"], None),
    (
        {"metrics": ("logme",), "aggregate": ("knn",)},
        "aggregate",
        "not_requested",
        ["--metrics", "logme", "--aggregate", "knn"],
        None,
    ),
    (
        {"metric_params": {"knn": {"kk": 3}}},
        "metric_params",
        "unknown_param",
        None,
        "[metric_params.knn]\nkk = 3",
    ),
    (
        {"metric_params": {"nosuch": {}}},
        "metric_params",
        "unknown_metric",
        None,
        "[metric_params.nosuch]\nk = 3",
    ),
    ({"executor": {"kind": "dask"}}, "executor", "unknown_executor", None, 'executor = "dask"'),
    ({"executor": {"kind": "ray", "port": 1}}, "executor", "unknown_key", None, "[executor]\nport = 1"),
    (
        {"executor": {"kind": "local", "address": "auto"}},
        "executor",
        "local_settings",
        ["--executor", "local", "--ray-address", "auto"],
        None,
    ),
]


@pytest.mark.parametrize(("values", "field", "rule", "_flags", "_line"), FAULTS)
def test_each_fault_is_refused_by_its_one_rule(values, field, rule, _flags, _line) -> None:
    with pytest.raises(RequestError) as info:
        RankRequest(**{**OK, **values})
    assert (info.value.field, info.value.rule) == (field, rule)
    assert info.value.fix and ((field, rule) in RULES or ("*", rule) in RULES)


@pytest.mark.parametrize(
    ("values", "field", "rule", "line"), [(v, f, r, line) for v, f, r, _, line in FAULTS if line is not None]
)
def test_the_config_file_meets_the_same_rule(tmp_path: Path, values, field, rule, line) -> None:
    path = tmp_path / "study.toml"
    base = [f"{key} = {value}" for key, value in (("data", '"sklearn:digits"'), ("models", '["timm:a"]'))]
    kept = [b for b in base if not line.startswith(b.split(" ")[0] + " ")]
    path.write_text("\n".join([*kept, line, ""]), encoding="utf-8")
    with pytest.raises(RequestError) as info:
        resolve_config(load_config_file(path), {})
    assert (info.value.field, info.value.rule) == (field, rule)


@pytest.mark.parametrize(
    ("values", "flags"), [(v, flags) for v, _, _, flags, _ in FAULTS if flags is not None]
)
def test_the_rank_flags_meet_the_same_rule_before_anything_is_opened(tmp_path, capfd, values, flags) -> None:
    with pytest.raises(RequestError) as info:
        RankRequest(**{**OK, **values})
    cache = tmp_path / "cache"
    code = main(["rank", "--data", "/no/such/data", "--models", "timm:a", "--cache-dir", str(cache), *flags])
    err = capfd.readouterr().err
    assert code == EXIT_USAGE and f"error: {info.value.message}" in err and f"fix: {info.value.fix}" in err
    assert not cache.exists()  # refused before the cache was even created


def test_the_form_builds_the_same_request_and_meets_the_same_rules(tmp_path: Path) -> None:
    request = form.build_request(
        tmp_path, data=" sklearn:digits ", candidates="timm:a\ntimm:b, timm:a", n_bootstrap=7
    )
    assert request == RankRequest(
        data="sklearn:digits",
        models=("timm:a", "timm:b"),
        name="dashboard",
        cache_dir=str(tmp_path),
        n_bootstrap=7,
    )
    with pytest.raises(RequestError) as info:
        form.build_request(
            tmp_path, data="sklearn:digits", candidates="timm:a", n_bootstrap=MAX_N_BOOTSTRAP + 1
        )
    assert (info.value.field, info.value.rule) == ("n_bootstrap", "range")


def test_the_python_api_builds_the_same_request(tmp_path: Path) -> None:
    from analyzer.ranking import Ranker

    ranker = Ranker("sklearn:digits", cache_dir=tmp_path, max_per_class=5, progress=False)
    plan = ranker.plan(["timm:a"], ["logme"], n_bootstrap=5)
    assert plan.request.data == "sklearn:digits" and plan.request.max_per_class == 5
    assert plan.metrics == ("logme",) and plan.n_bootstrap == 5
    with pytest.raises(
        RequestError, match="bootstrap_fraction must be below 1"
    ):  # the CLI's rule, not a looser one
        ranker.plan(["timm:a"], bootstrap_fraction=1.0)


def test_every_count_has_an_upper_bound_and_every_field_a_way_in() -> None:
    parser = argparse.ArgumentParser()
    rank_command.add_arguments(parser)
    flags = {a.dest for a in parser._actions}
    for name, (spec, default) in RankRequest.options().items():
        if int in spec.kinds and bool not in spec.kinds:
            assert spec.high is not None or spec.below is not None, f"{name} has no upper bound"
        assert name in flags or not spec.flag, f"{name} has no --flag"
        if default is not None:
            spec.check(name, default)  # the defaults pass their own checks


def test_a_request_round_trips_through_what_the_report_records(tmp_path: Path) -> None:
    request = RankRequest(
        **OK,
        metrics=("logme", "knn"),
        metric_params={"knn": {"k": 3}},
        executor={"kind": "ray", "address": "auto"},
        n_bootstrap=0,
    )
    recorded = request.to_dict()
    assert set(recorded) == {f.name for f in fields(RankRequest)}
    assert recorded["models"] == ["timm:a"] and recorded["metrics"] == ["logme", "knn"]
    assert RankRequest(**recorded) == request
    assert request.replace(seed=3).seed == 3
    with pytest.raises(RequestError):
        request.replace(seed=-3)
