"""Comparing two report.json files of the same ranking run on different executors."""

from __future__ import annotations

#: report.json fields that legitimately differ between two runs of the same ranking (times, host, where it ran).
#: ``pareto`` and ``recommendation`` are drawn on the measured latency (analyzer.cost.TIMED_FIELDS).
VOLATILE = {"created", "timings", "environment", "config", "pareto", "recommendation"}


def comparable(report: dict) -> dict:
    from analyzer.cost import TIMED_FIELDS

    out = {k: v for k, v in report.items() if k not in VOLATILE}
    for row in out["ranking"]:
        row.pop("extraction_seconds", None)
        for timed in TIMED_FIELDS:
            (row.get("cost") or {}).pop(timed, None)
    for spectrum in (out.get("spectrum") or {}).values():
        spectrum.pop("seconds", None)
    return out


def assert_same_report(a: dict, b: dict) -> None:
    """Field by field (a failure names the field); floats compared exactly, NaN equal to NaN."""
    import json

    a, b = comparable(a), comparable(b)
    assert sorted(a) == sorted(b)
    for key in a:
        assert json.dumps(a[key], sort_keys=True) == json.dumps(b[key], sort_keys=True), key
