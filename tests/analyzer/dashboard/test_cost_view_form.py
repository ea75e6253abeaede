"""The dashboard's budget inputs (analyzer.dashboard.form.build_request) and its Cost tab's data (analyzer.dashboard.cost)."""

from __future__ import annotations

import pytest

from analyzer.budget import Budget
from analyzer.dashboard import cost, form
from analyzer.errors import ConfigError
from tests.fixtures.make_run import make_run


def test_the_forms_budget_inputs_make_the_same_budget_as_the_flags(tmp_path):
    def budget(values):
        return form.build_request(tmp_path, data="d", candidates="timm:a", budget=values).budget()

    assert budget(None) == Budget()
    values = {"max_params": 300000.0, "max_flops": 0.0, "max_latency_ms": 2.5, "max_memory_mb": 0.0}
    assert budget(values) == Budget(max_params=300_000, max_latency_ms=2.5)  # 0: no limit
    assert [key for key, _ in form.BUDGET_INPUTS] == [
        "max_params",
        "max_flops",
        "max_latency_ms",
        "max_memory_mb",
    ]
    with pytest.raises(ConfigError, match="--max-memory-mb must be a positive number"):
        budget({"max_memory_mb": -1.0})


def test_the_cost_tab_has_the_budget_the_table_and_a_chart_with_the_front():
    result = make_run(n_models=5)
    text, frame, figure = cost.view(result)
    assert text.startswith("Budget: params <= 20M.") and "Pick: " in text
    assert frame is not None and len(frame) == 5
    assert figure is not None
    front = next(t for t in figure.data if t.name == "Pareto front")
    assert len(front.x) == len(result.pareto["models"])


def test_the_cost_tab_of_a_run_without_costs_says_so():
    text, frame, figure = cost.view(make_run(n_models=3, with_cost=False))
    assert "no measured cost" in text and frame is None and figure is None
