"""Every entry of ../shared/reference/golden/expected.json, one test id each.

Generic on purpose: the same file runs on other golden directories in the same format (set $METRICS_GOLDEN_DIR to
point at one), so nothing here names a case, a metric or a value. The format is described in
../shared/reference/README.md.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

import metrics
from metrics.correlation import weighted_tau
from tests.conftest import REFERENCE, require_shared


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_library():
    # the test problems are small: on a shared 2-core machine, BLAS/OpenMP thread pools only oversubscribe
    # (measured: the same tests run ~10x slower with 2 threads per library under load)
    with threadpool_limits(limits=1):
        yield


GOLDEN = Path(os.environ.get("METRICS_GOLDEN_DIR", REFERENCE / "golden"))


def _load_expected() -> dict[str, Any]:
    path = GOLDEN / "expected.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def _param_id(params: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(params.items())) or "defaults"


def _entries(section: str) -> list[Any]:
    expected = _load_expected()
    params = []
    if section == "weighted_tau":
        for i, entry in enumerate(expected.get("weighted_tau", [])):
            params.append(pytest.param(entry, id=f"weighted_tau-{i}"))
        return params or [pytest.param(None, id="weighted_tau-absent")]
    for case, entries in expected.get(section, {}).items():
        for i, entry in enumerate(entries):
            params.append(
                pytest.param(
                    case, entry, id=f"{case}-{entry['metric']}-{_param_id(entry.get('params', {}))}-{i}"
                )
            )
    if not params:
        # keep one skipped test so a missing ../shared is visible in the report instead of "no tests ran"
        params.append(pytest.param(None, None, id=f"{section}-absent"))
    return params


def _open_case(case: str) -> dict[str, np.ndarray]:
    path = require_shared(GOLDEN / f"{case}.npz")
    # string labels are normally unicode arrays; a case that stores them as objects needs pickle (trusted
    # reference data), so allow it only for such a case
    try:
        with np.load(path, allow_pickle=False) as data:
            return {name: data[name] for name in data.files}
    except ValueError:
        with np.load(path, allow_pickle=True) as data:
            return {name: data[name] for name in data.files}


def _assert_close(actual: float, expected: float, rtol: float, what: str) -> None:
    assert np.isfinite(actual), f"{what}: got {actual}, expected {expected}"
    # relative tolerance as the golden file defines it, with an absolute floor only for exact zeros
    assert actual == pytest.approx(expected, rel=rtol, abs=rtol if expected == 0 else 0.0), (
        f"{what}: got {actual!r}, expected {expected!r} (rel. error {abs(actual - expected) / max(abs(expected), 1e-300):.3g}, "
        f"rtol {rtol})"
    )


@pytest.mark.parametrize(("case", "entry"), _entries("cases"))
def test_metric_matches_golden_value(case: str | None, entry: dict[str, Any] | None) -> None:
    if case is None or entry is None:
        require_shared(GOLDEN / "expected.json")
        pytest.skip("no per-case entries in expected.json")
    name = entry["metric"]
    if name not in metrics.available():
        pytest.skip(f"metric {name!r} is not implemented yet (available: {', '.join(metrics.available())})")
    data = _open_case(case)
    before = {key: value.copy() for key, value in data.items()}
    value = metrics.compute(
        name,
        data["features"],
        data["labels"],
        source_probs=data.get("source_probs"),
        reference_features=data.get("reference_features"),
        **entry.get("params", {}),
    )
    _assert_close(value, entry["value"], entry["rtol"], f"{case} {name} {entry.get('params', {})}")
    for key, original in before.items():
        np.testing.assert_array_equal(data[key], original, err_msg=f"{name} modified its input {key!r}")


def _pool_features(data: dict[str, np.ndarray]) -> list[np.ndarray]:
    numbered = sorted(
        (int(match.group(1)), key)
        for key in data
        if (match := re.fullmatch(r"features_(\d+)", key)) is not None
    )
    return [data[key] for _, key in numbered]


@pytest.mark.parametrize(("case", "entry"), _entries("pools"))
def test_pool_metric_matches_golden_values(case: str | None, entry: dict[str, Any] | None) -> None:
    if case is None or entry is None:
        require_shared(GOLDEN / "expected.json")
        pytest.skip("no pool entries in expected.json")
    name = entry["metric"]
    if name not in metrics.available():
        pytest.skip(f"metric {name!r} is not implemented yet (available: {', '.join(metrics.available())})")
    data = _open_case(case)
    features = _pool_features(data)
    assert len(features) == len(entry["values"]), f"{case} has {len(features)} candidates"
    probs = [data[f"source_probs_{i}"] for i in range(len(features))] if "source_probs_0" in data else None
    values = metrics.compute_pool(
        name,
        features,
        data["labels"],
        source_probs=probs,
        reference_features=data.get("reference_features"),
        **entry.get("params", {}),
    )
    assert len(values) == len(entry["values"])
    for i, (actual, expected) in enumerate(zip(values, entry["values"], strict=True)):
        _assert_close(actual, expected, entry["rtol"], f"{case} {name} candidate {i}")


@pytest.mark.parametrize("entry", _entries("weighted_tau"))
def test_weighted_tau_matches_golden_value(entry: dict[str, Any] | None) -> None:
    if entry is None:
        require_shared(GOLDEN / "expected.json")
        pytest.skip("no weighted_tau entries in expected.json")
    value = weighted_tau(entry["scores"], entry["truth"])
    _assert_close(value, entry["value"], entry.get("rtol", 1e-9), "weighted_tau")
