"""The aggregate study's pure table building: tau/regret per row and target, aggregates, verdicts, markdown.

Small hand-made score tables only: no models, no ../shared.
"""

from __future__ import annotations

import importlib.util
import math
import sys

import pytest

from tests.conftest import PROJECT_ROOT

_PATH = PROJECT_ROOT / "benchmarks" / "aggregate_study.py"
_spec = importlib.util.spec_from_file_location("aggregate_study", _PATH)
study = importlib.util.module_from_spec(_spec)
sys.modules["aggregate_study"] = study
_spec.loader.exec_module(study)

MODELS = ["a", "b", "c", "d"]
TRUTH_A = {"a": 0.9, "b": 0.8, "c": 0.7, "d": 0.6}  # a is best
TRUTH_B = {"a": 0.6, "b": 0.7, "c": 0.8, "d": 0.9}  # d is best: the true order flips between targets


def _target(name: str, truth: dict[str, float], scores: dict[str, dict[str, float | None]]):
    return study.TargetScores(name=name, models=list(MODELS), truth=truth, scores=scores, n_samples=40)


def _two_targets():
    # "steady" always follows the truth; "flipper" ranks a first on both targets (right on A, inverse on B);
    # "partial" misses candidate d.
    steady_a = {m: TRUTH_A[m] * 10 for m in MODELS}
    steady_b = {m: TRUTH_B[m] * 10 for m in MODELS}
    flipper = {"a": 4.0, "b": 3.0, "c": 2.0, "d": 1.0}
    partial = {"a": 1.0, "b": 2.0, "c": 3.0, "d": None}
    params = {"a": 10.0, "b": 10.0, "c": 20.0, "d": 30.0}
    a = _target(
        "A",
        TRUTH_A,
        {"steady": steady_a, "flipper": flipper, "partial": partial, "num_params": params},
    )
    b = _target(
        "B",
        TRUTH_B,
        {"steady": steady_b, "flipper": flipper, "partial": partial, "num_params": params},
    )
    return [a, b]


AGGS = {"steady+flipper": ("steady", "flipper"), "steady only": ("steady",)}


def test_a_metric_that_follows_the_truth_gets_tau_one_and_zero_regret():
    rows = study.build_table(_two_targets(), metric_names=["steady", "flipper", "partial"], aggregates=AGGS)
    steady = next(r for r in rows if r.name == "steady")
    assert steady.tau == {"A": pytest.approx(1.0), "B": pytest.approx(1.0)}
    assert steady.regret == {"A": 0.0, "B": 0.0}
    assert steady.worst_tau == pytest.approx(1.0)


def test_a_metric_inverse_on_one_target_shows_negative_tau_and_regret_in_accuracy_points():
    rows = study.build_table(_two_targets(), metric_names=["steady", "flipper", "partial"], aggregates=AGGS)
    flipper = next(r for r in rows if r.name == "flipper")
    assert flipper.tau["A"] == pytest.approx(1.0)
    assert flipper.tau["B"] == pytest.approx(-1.0)
    # picks a (0.6) on B where d (0.9) is best: 30 accuracy points lost
    assert flipper.regret["B"] == pytest.approx(30.0)
    assert flipper.worst_regret == pytest.approx(30.0)
    found = study.inverted_metrics(rows, ["A", "B"])
    assert any(line.startswith("flipper:") for line in found)
    assert not any(line.startswith("steady:") for line in found)


def test_rows_cover_metrics_then_baselines_then_aggregates_then_rules():
    rules = {"rule: flipper below 10/class": ("flipper", ("steady",), 10)}
    rows = study.build_table(_two_targets(), metric_names=["steady", "flipper"], aggregates=AGGS, rules=rules)
    assert [(r.name, r.kind) for r in rows] == [
        ("steady", "metric"),
        ("flipper", "metric"),
        ("num_params", "baseline"),
        ("source_accuracy", "baseline"),
        ("steady+flipper", "aggregate"),
        ("steady only", "aggregate"),
        ("rule: flipper below 10/class", "rule"),
    ]
    missing = next(r for r in rows if r.name == "source_accuracy")
    assert math.isnan(missing.tau["A"]) and missing.n["A"] == 0


def test_a_rule_uses_its_metric_below_the_threshold_and_its_aggregate_from_it_on():
    few, many = _two_targets()
    few.n_samples, few.n_classes = 20, 2  # 10 per class
    many.n_samples, many.n_classes = 200, 2
    assert study.rule_scores(few, "flipper", ("steady",), 60) == few.scores["flipper"]
    assert study.rule_scores(many, "flipper", ("steady",), 60) == study.aggregate_scores(
        many.scores, ("steady",), many.models
    )


def test_aggregate_is_minus_the_mean_rank_and_skips_missing_scores():
    scores = {"x": {"a": 3.0, "b": 2.0, "c": 1.0}, "y": {"a": 1.0, "b": None, "c": 2.0}}
    agg = study.aggregate_scores(scores, ["x", "y", "not-scored"], ["a", "b", "c"])
    # ranks: x -> a1 b2 c3; y -> c1 a2 (b missing) => a 1.5, b 2 (x only), c 2
    assert agg == {"a": pytest.approx(-1.5), "b": pytest.approx(-2.0), "c": pytest.approx(-2.0)}
    assert study.aggregate_scores(scores, ["none"], ["a"]) == {"a": None}


def test_verdict_says_where_an_aggregate_is_worse_than_the_best_single_metric():
    rows = study.build_table(_two_targets(), metric_names=["steady", "flipper"], aggregates=AGGS)
    verdict = study.verdicts(rows, ["A", "B"])
    assert verdict["steady only"] == []  # equal to the best single metric everywhere
    assert any(v.startswith("B (tau") for v in verdict["steady+flipper"])
    assert not any(v.startswith("A (tau") for v in verdict["steady+flipper"])


def test_placeholders_expand_to_label_only_and_all_metrics():
    names = ["hscore", "knn", "leep", "logme", "nce"]
    assert study.expand_members([study.ALL_LABEL], names) == ("hscore", "knn", "logme")
    assert study.expand_members([study.ALL_METRICS, "knn"], names) == tuple(names)


def test_markdown_report_has_the_table_truth_partial_counts_and_timings():
    targets = _two_targets()
    targets[0].truth_check = {m: v + 0.01 for m, v in TRUTH_A.items()}
    targets[0].skipped = [("partial", "d", "partial failed: singular")]
    targets[0].timings = {"extract": 1.0, "probe": 2.0, "scoring": 3.0, "metric:steady": 3.0, "total": 6.0}
    rows = study.build_table(targets, metric_names=["steady", "flipper", "partial"], aggregates=AGGS)
    text = study.report_markdown(targets, rows)
    assert "| row | kind | A τw | A regret | B τw | B regret | worst τw | worst regret |" in text
    assert "| partial | metric |" in text and "(3/4)" in text  # partial scored 3 of the 4 candidates
    assert "Truth stability: weighted tau between the two fold shuffles = 1.000" in text
    assert "partial on d: partial failed: singular" in text
    assert "| A | 4 | 1.0 | 2.0 | 3.0 | steady 3.0 | 6.0 |" in text
    assert "- steady only: at least as good on every target" in text
    assert "### Sensitivity: the same rows against the check-seed truth" in text
