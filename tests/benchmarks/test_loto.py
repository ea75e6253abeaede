"""Leave-one-target-out: the aggregate is chosen without the held-out dataset and judged on it."""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field

from tests.conftest import PROJECT_ROOT

sys.path.insert(0, str(PROJECT_ROOT))

from benchmarks.loto import (  # noqa: E402
    choose,
    group_of,
    leave_one_target_out,
    loto_markdown,
    worst_case_markdown,
)


@dataclass
class _Row:
    name: str
    kind: str
    tau: dict[str, float] = field(default_factory=dict)
    regret: dict[str, float] = field(default_factory=dict)


TARGETS = ["a", "a@10", "b", "c"]
ROWS = [
    _Row("sfda", "metric", {"a": 0.9, "a@10": 0.1, "b": 0.8, "c": 0.7}),
    _Row("knn", "metric", {"a": 0.5, "a@10": 0.5, "b": 0.6, "c": 0.4}),
    _Row("num_params", "baseline", {"a": 0.2, "a@10": 0.2, "b": -0.3, "c": 0.1}),
    # steady: best worst case everywhere except when c is held out
    _Row("steady", "aggregate", {"a": 0.6, "a@10": 0.6, "b": 0.6, "c": 0.9}, {"c": 0.0}),
    # spiky: great on a and b, bad on c
    _Row("spiky", "aggregate", {"a": 0.95, "a@10": 0.9, "b": 0.95, "c": -0.5}, {"c": 30.0}),
]


def test_variants_of_one_dataset_form_one_group() -> None:
    assert group_of("notmnist@10") == "notmnist" == group_of("notmnist")
    assert group_of("digits/small") == "digits"


def test_the_rule_picks_the_best_worst_case_on_the_training_targets_only() -> None:
    assert choose(ROWS, ["a", "a@10", "b"]) == "spiky"
    assert choose(ROWS, ["b", "c"]) == "steady"


def test_each_held_out_target_is_judged_with_the_choice_made_without_its_dataset() -> None:
    held = {h.target: h for h in leave_one_target_out(ROWS, TARGETS)}
    assert set(held) == set(TARGETS)
    assert held["a"].chosen == held["a@10"].chosen == "steady"  # chosen on b and c only
    assert held["c"].chosen == "spiky" and held["c"].chosen_tau == -0.5 and held["c"].chosen_regret == 30.0
    assert held["b"].compared == {"sfda": 0.8, "knn": 0.6, "num_params": -0.3}
    table = loto_markdown(list(held.values()))
    assert "| **worst case** | | -0.500 | | 0.100 | 0.400 | -0.300 |" in table
    assert not math.isnan(held["a"].chosen_tau)


def test_a_regime_variant_stays_in_its_dataset_s_group() -> None:
    assert group_of("notmnist@10/ft") == "notmnist" == group_of("notmnist/ft")


def test_default_candidates_include_single_metrics_and_rules_but_never_a_source_head_metric() -> None:
    rows = [
        *ROWS,
        _Row("leep", "metric", {"a": 1.0, "a@10": 1.0, "b": 1.0, "c": 1.0}),
        _Row("rule", "rule", {"a": 0.7, "a@10": 0.7, "b": 0.7, "c": 0.7}),
    ]
    kinds = ("metric", "aggregate", "rule")
    assert choose(rows, ["a", "a@10", "b", "c"], kinds) == "rule"  # leep would win, but needs a source head
    assert choose(rows, ["a", "b"], kinds) == "spiky"
    table = worst_case_markdown(rows, TARGETS, kinds)
    assert "| rule (best) | rule | **0.700** | **0.700** | **0.700** | **0.700** | 0.700 |" in table
    assert "| sfda | metric | 0.900 | **0.100** | 0.800 | 0.700 | 0.100 |" in table
    assert "leep" not in table and "num_params" not in table
