"""Report writers: four files from one RankingResult, atomic and self-contained."""

from __future__ import annotations

import json
import re
from dataclasses import replace

import pandas as pd
import pytest

from analyzer import reports
from analyzer.outputs import LEDGER
from analyzer.reports import save
from analyzer.result import RankingResult
from tests.fixtures.make_run import make_run


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    make_run(out, save=True)
    return out


def test_all_four_reports_are_written_and_no_temp_files_remain(run_dir):
    names = sorted(p.name for p in run_dir.iterdir() if p.name != LEDGER)  # the record of what it wrote
    assert names == ["ranking.csv", "report.html", "report.json", "report.md"]


def test_reports_are_readable_by_others_not_private_temp_files(run_dir):
    assert all((run_dir / name).stat().st_mode & 0o044 for name in reports.WRITERS)


def test_csv_matches_the_table_best_first(run_dir):
    frame = pd.read_csv(run_dir / "ranking.csv")
    result = RankingResult.load(run_dir)
    assert list(frame["model"]) == result.models
    assert list(frame["rank"]) == [r.rank for r in result.ranking]
    assert frame["logme"].tolist() == pytest.approx([r.scores["logme"] for r in result.ranking], rel=1e-5)


def test_html_is_self_contained_with_inline_plots(run_dir):
    text = (run_dir / "report.html").read_text()
    assert text.count("<svg") >= 4  # bars, heatmap, spectrum, truth scatter
    # Nothing is fetched when the page opens: no external src/href (XML namespaces are names, not fetches).
    assert not re.search(r"""(src|href)\s*=\s*["'](https?:)?//""", text)
    assert "<script" not in text and "<link" not in text
    assert "statistically tied" in text or "top choice is clear" in text
    assert "Validation against ground truth" in text


def test_markdown_lists_the_ranking_skips_failures_and_validation(run_dir):
    text = (run_dir / "report.md").read_text()
    result = RankingResult.load(run_dir)
    assert f"| 1 | {result.display_names[result.models[0]]} |" in text
    assert "does_not_exist" in text and "leep needs source_probs" in text
    assert "weighted τ" in text and "top-1 regret" in text  # readable names, not snake_case


def test_tables_use_short_names_and_list_every_full_spec_once(tmp_path):
    result = make_run(n_models=3)
    long_specs = [f"torchscript:/data/team/checkpoints/run{i}/backbone.pt" for i in range(3)]
    renamed = dict(zip(result.models, long_specs, strict=True))
    result = replace(
        result,
        ranking=[replace(entry, model=renamed[entry.model]) for entry in result.ranking],
        spectrum={renamed.get(k, k): v for k, v in result.spectrum.items()},
        skipped=[replace(s, model=renamed.get(s.model, s.model)) for s in result.skipped],
        pareto={
            **(result.pareto or {}),
            "models": [renamed[m] for m in (result.pareto or {}).get("models", [])],
        },
    )
    save(result, tmp_path)
    for report in ("report.md", "report.html"):
        text = (tmp_path / report).read_text()
        assert "Candidates" in text
        for i, spec in enumerate(long_specs):
            assert text.count(spec) == 1, (report, spec)  # once, in the candidates table
            assert f"run{i}/backbone" in text
    table = pd.read_csv(tmp_path / "ranking.csv")
    assert set(table["model"]) == set(long_specs)
    assert set(table["name"]) == {"run0/backbone", "run1/backbone", "run2/backbone"}


def test_no_candidates_table_when_names_are_the_specs(tmp_path):
    result = make_run(n_models=2)
    plain = [
        replace(entry, model=f"plain{i}") for i, entry in enumerate(result.ranking)
    ]  # not specs: shown as they are
    result = replace(result, ranking=plain, spectrum={}, skipped=[], failed=[])
    save(result, tmp_path)
    assert "Candidates" not in (tmp_path / "report.md").read_text()


def test_html_without_validation_or_spectrum_still_renders(tmp_path):
    result = make_run(with_validation=False)
    result = replace(result, spectrum={})
    save(result, tmp_path)
    text = (tmp_path / "report.html").read_text()
    assert "Validation against ground truth" not in text and "<svg" in text


def test_a_failing_writer_leaves_the_previous_report_intact(tmp_path, monkeypatch):
    make_run(tmp_path, save=True)
    before = (tmp_path / "report.html").read_text()

    def boom(_result):
        raise RuntimeError("disk full")

    monkeypatch.setitem(reports.WRITERS, "report.html", boom)
    with pytest.raises(RuntimeError):
        make_run(tmp_path, seed=1, save=True)
    assert (tmp_path / "report.html").read_text() == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".") and p.name != LEDGER]


def test_report_json_is_strict_json(run_dir):
    text = (run_dir / "report.json").read_text()
    json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))


def test_html_plots_remembered_in_the_cache_give_the_same_bytes_without_drawing_again(tmp_path, monkeypatch):
    from analyzer.reports import html

    result = make_run()
    drawn = html.render(result)
    assert html.render(result, tmp_path / "figures") == drawn  # first render: drawn and remembered
    assert len(list((tmp_path / "figures").glob("*.json"))) == 5  # four plots and the Pareto chart

    def no_drawing():
        raise AssertionError("a remembered plot was drawn again")

    monkeypatch.setattr(html, "_pyplot", no_drawing)
    assert html.render(result, tmp_path / "figures") == drawn


def test_a_changed_result_draws_its_plots_again(tmp_path):
    from analyzer.reports import html

    result = make_run()
    html.render(result, tmp_path)
    top = replace(result.ranking[0], scores={**result.ranking[0].scores, "logme": 123.0})
    result = replace(result, ranking=[top, *result.ranking[1:]])  # the bar chart and the scatter plot change
    changed = html.render(result, tmp_path)
    assert changed == html.render(result) and "123" in changed
    assert len(list(tmp_path.glob("*.json"))) > 5


def test_markdown_and_html_explain_every_metric_with_its_direction_needs_and_record(run_dir):
    """Each metric of the run gets its card in both reports: in the aggregate or beside it, direction, inputs,
    what it measures and its measured weighted tau (the same text the dashboard's tooltips use)."""
    from html import escape

    from analyzer.explain import explain
    from analyzer.metric_record import record_text

    result = RankingResult.load(run_dir)
    md = (run_dir / "report.md").read_text()
    html = (run_dir / "report.html").read_text()
    assert "## How to read each metric" in md and "How to read each metric" in html
    names = [m.name for m in result.metrics if m.kind != "baseline"]
    assert names
    for name in names:
        card = explain(name)
        row = next(line for line in md.splitlines() if line.startswith(f"| {card.label} | "))
        assert ("| yes |" in row) == (name in result.aggregate.metrics)
        assert card.summary.replace("|", "\\|") in row and record_text(name) in row
        assert escape(card.summary) in html
