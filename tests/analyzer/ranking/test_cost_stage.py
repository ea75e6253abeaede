"""The cost stage: one task per candidate through the executor, recorded per (weights, input, device, batch size),
so a second run measures nothing; a candidate it cannot measure keeps its place with no cost."""

from __future__ import annotations

import pytest

from analyzer.budget import Budget
from analyzer.executors import InProcessExecutor
from analyzer.ranking import ProgressEvent
from analyzer.ranking.stages.cost import CostInput, cost_records, record_name, run_cost
from analyzer.ranking.stages.features import FeaturesInput, run_features
from tests.analyzer.ranking.test_stages import ReversedExecutor
from tests.fixtures.make_run import make_image_folder, make_torchscript_model


@pytest.fixture
def extracted(tmp_path):
    from analyzer.datasets import open_dataset

    data = make_image_folder(tmp_path / "images", classes=2, per_class=4)
    specs = [make_torchscript_model(tmp_path / f"m{i}.pt", seed=i, width=4 + 3 * i) for i in range(2)]
    out = run_features(
        FeaturesInput(tuple(specs), open_dataset(data), tmp_path / "cache", progress=False),
        InProcessExecutor(),
        lambda _: None,
    )
    return tmp_path / "cache", out.extracted


def test_cost_stage_measures_each_candidate_once_then_reads_the_records(extracted):
    cache, candidates = extracted
    inp = CostInput(cache, candidates, device="cpu", batch_size=4)
    executor = ReversedExecutor()
    events: list[ProgressEvent] = []
    first = run_cost(inp, executor, events.append)
    assert first.measured == 2 and not first.skipped
    assert [t.stage for t in executor.tasks] == ["cost", "cost"]
    assert sorted((e.stage, e.done, e.total) for e in events) == [("cost", 1, 2), ("cost", 2, 2)]
    for c in candidates:
        cost = first.costs[c.model]
        assert cost is not None and cost["batch_size"] == 4 and cost["input_shape"] == [3, 16, 16]
        assert cost["flops"] > 0 and cost["params"] > 0 and cost["latency_ms"] > 0

    again = ReversedExecutor()
    second = run_cost(inp, again, events.append)
    assert second.measured == 0 and again.tasks == [] and second.costs == first.costs  # nothing measured


def test_another_batch_size_or_device_is_another_record(extracted):
    from analyzer.cost import device_key

    cache, candidates = extracted
    names = {
        record_name(cache, candidates[0], device_key("cpu"), 4),
        record_name(cache, candidates[0], device_key("cpu"), 8),
        record_name(cache, candidates[0], "cuda:0 (some GPU)", 4),
        record_name(cache, candidates[1], device_key("cpu"), 4),
    }
    assert len(names) == 4


def test_a_candidate_that_cannot_be_measured_is_skipped_with_the_reason(extracted):
    cache, candidates = extracted
    spec_file = candidates[1].model.split(":", 1)[1]
    import os

    os.remove(spec_file)  # its features are in the store, but the model can no longer be loaded
    out = run_cost(
        CostInput(cache, candidates, device="cpu", batch_size=4), InProcessExecutor(), lambda _: None
    )
    assert out.costs[candidates[0].model] is not None and out.costs[candidates[1].model] is None
    assert [(s.model, s.metric) for s in out.skipped] == [(candidates[1].model, "cost")]
    assert "cost not measured" in out.skipped[0].reason
    assert len(list(cost_records(cache).folder.glob("*.json"))) == 1  # a failure records nothing


def test_the_ranking_reports_cost_budget_recommendation_and_pareto(tmp_path):
    from analyzer.ranking import Ranker

    data = make_image_folder(tmp_path / "images", classes=3, per_class=6)
    specs = [make_torchscript_model(tmp_path / f"m{i}.pt", seed=i, width=4 + 4 * i) for i in range(3)]
    executor = ReversedExecutor()
    ranker = Ranker(data, cache_dir=tmp_path / "cache", progress=False, device="cpu", executor=executor)
    result = ranker.run(
        specs, ["logme", "knn"], n_bootstrap=5, budget=Budget(max_params=10**9), pareto_axis="params"
    )
    report = result.to_dict()
    assert "cost_seconds" in report["timings"]
    assert sum(t.stage == "cost" for t in executor.tasks) == 3
    for row in report["ranking"]:
        assert set(row["cost"]) >= {
            "params",
            "flops",
            "latency_ms",
            "throughput",
            "peak_memory_mb",
            "weights_mb",
            "device",
        }
        assert row["within_budget"] is True
    assert report["budget"]["max_params"] == 10**9 and report["pareto"]["axis"] == "params"
    assert report["recommendation"]["model"] == result.top_tie()[0] or report["recommendation"]["tie_broken"]

    params = {row["model"]: row["cost"]["params"] for row in report["ranking"]}
    executor.tasks.clear()
    tight = ranker.run(specs, ["logme", "knn"], n_bootstrap=5, budget=Budget(max_params=min(params.values())))
    assert not [t for t in executor.tasks if t.stage == "cost"]  # every cost read from the cache
    assert tight.recommendation is not None and tight.recommendation["model"] == min(params, key=params.get)
    assert [row.within_budget for row in tight.ranking] == [
        row.model == min(params, key=params.get) for row in tight.ranking
    ]
