"""The cost in every report and the CLI (analyzer.cost_view): ranking.csv's columns, report.md and report.html's
section and Pareto chart, the printed budget and pick; all from the same result fields."""

from __future__ import annotations

import dataclasses

import pandas as pd

from analyzer import cost_view
from analyzer.budget import Budget
from analyzer.ranking.stages.cost import CostChoice, with_costs
from analyzer.reports import save
from tests.fixtures.make_run import make_run


def test_ranking_csv_has_the_cost_columns_with_the_measured_values(tmp_path):
    result = make_run(n_models=5)
    save(result, tmp_path)
    table = pd.read_csv(tmp_path / "ranking.csv")
    assert set(cost_view.CSV_COLUMNS) <= set(table.columns)
    for row in result.ranking:
        line = table[table["model"] == row.model].iloc[0]
        assert line["params"] == row.cost["params"] and line["flops"] == row.cost["flops"]
        assert line["latency_ms"] == float(f"{row.cost['latency_ms']:.6g}")
        assert bool(line["within_budget"]) == row.within_budget
        assert bool(line["on_pareto_front"]) == (row.model in result.pareto["models"])


def test_markdown_and_html_state_the_budget_the_pick_and_the_cost_table(tmp_path):
    result = make_run(n_models=5)
    save(result, tmp_path)
    md = (tmp_path / "report.md").read_text()
    html = (tmp_path / "report.html").read_text()
    assert "## Cost and budget" in md and "<h2>Cost and budget</h2>" in html
    assert "Budget: params <= 20M." in md and "Budget: params &lt;= 20M." in html
    assert f"Pick: {result.recommendation['reason']}" in md
    assert "| " + " | ".join(cost_view.TABLE_HEADER) + " |" in md
    assert "Pareto front (mean rank against latency_ms)" in md
    assert html.count("<svg") == 5  # the four plots and the Pareto chart


def test_the_pareto_chart_draws_the_budget_line_only_on_its_own_axis():
    result = make_run(n_models=5)
    view = cost_view.pareto_view(result)
    assert view is not None and view.axis == "latency_ms" and view.limit is None  # the budget limits params
    assert {p.model for p in view.points if p.on_front} == set(result.pareto["models"])
    assert [p.within_budget for p in view.points] == [row.within_budget for row in result.ranking]
    costs = {row.model: row.cost for row in result.ranking}
    result = with_costs(result, CostChoice(costs, Budget(max_params=20_000_000), "params"))
    view = cost_view.pareto_view(result)
    assert view is not None and view.axis == "params" and view.limit == 20_000_000
    from analyzer.reports.html import pareto_chart

    svg = pareto_chart(result)
    assert svg is not None
    assert svg.startswith("<svg") and "budget params" in svg and "Pareto front" in svg


def test_a_report_without_costs_shows_no_cost_section(tmp_path):
    result = make_run(n_models=3, with_cost=False)
    save(result, tmp_path)
    assert "Cost and budget" not in (tmp_path / "report.md").read_text()
    assert "params" not in pd.read_csv(tmp_path / "ranking.csv").columns
    assert not cost_view.has_costs(result) and cost_view.pareto_view(result) is None


def test_the_cli_prints_the_cost_table_the_budget_and_the_pick(capsys):
    from analyzer.commands.rank import print_summary

    result = make_run(n_models=5)
    print_summary(result)
    out = capsys.readouterr().out
    assert "latency ms (IQR)" in out and "Budget: params <= 20M." in out
    assert f"Pick: {result.recommendation['reason']}" in out


def test_none_fits_is_said_plainly_and_the_reports_are_still_written(tmp_path):
    result = make_run(n_models=5)
    costs = {row.model: row.cost for row in result.ranking}
    result = with_costs(result, CostChoice(costs, Budget(max_latency_ms=0.1), "latency_ms"))
    assert result.recommendation["model"] is None and result.recommendation["closest"] in costs
    save(result, tmp_path)
    md = (tmp_path / "report.md").read_text()
    assert "Pick: No candidate fits the budget (latency_ms <= 0.1 ms). The closest is" in md
    assert dataclasses.asdict(cost_view.pareto_view(result))["limit"] == 0.1
