"""The ranking's stages one by one: typed inputs and outputs, units run through an Executor, failures as data.

The stages run on real store entries of tiny random TorchScript models (features) or on synthetic feature
entries put straight into the store (scores, bootstrap), so each check is about one stage.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest

import metrics
from analyzer.cost import TIMED_FIELDS
from analyzer.executors import InProcessExecutor, Task, TaskOutcome
from analyzer.executors.base import DoneCallback
from analyzer.ranking import ProgressEvent, RankingError, RankingPlan
from analyzer.ranking.scale_free import scoring_features
from analyzer.ranking.stages.bootstrap import BootstrapInput, run_bootstrap
from analyzer.ranking.stages.features import Extracted, FeaturesInput, run_features
from analyzer.ranking.stages.scores import ScoresInput, run_scores, score_records
from analyzer.ranking.statistics import stratified_subsamples
from analyzer.request import RankRequest, RequestError
from analyzer.store import FeatureStore, hash_sequence
from tests.fixtures.make_run import make_image_folder, make_torchscript_model


class ReversedExecutor(InProcessExecutor):
    """Runs the tasks last-first (as a cluster may finish them) but returns outcomes in task order."""

    name = "reversed"

    def __init__(self) -> None:
        super().__init__()
        self.tasks: list[Task] = []

    def run(self, tasks: Sequence[Task], *, on_done: DoneCallback | None = None) -> list[TaskOutcome]:
        self.tasks += tasks
        outcomes = InProcessExecutor().run(list(reversed(tasks)), on_done=on_done)
        return list(reversed(outcomes))


def put_entry(
    store: FeatureStore, key: str, features: np.ndarray, labels: np.ndarray, *, probs=None
) -> Extracted:
    ids = [f"s{i}" for i in range(len(labels))]
    store.put(key, features=features, labels=labels, sample_ids=ids, source_probs=probs, meta={"spec": key})
    return Extracted(key, key, features.shape[1], probs is not None, hash_sequence(ids))


@pytest.fixture
def synthetic(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 12)
    store = FeatureStore(tmp_path)
    cands = tuple(
        put_entry(
            store,
            f"cand{i}",
            (rng.normal(size=(36, 8)) + (i + 1) * np.eye(3, 8)[labels]).astype(np.float32),
            labels,
        )
        for i in range(3)
    )
    return tmp_path, cands, labels, store


def test_plan_resolves_a_checked_request_before_any_work():
    plan = RankingPlan.of(
        RankRequest(data="d", models=(" a ", "b", "a"), metrics=("logme", "knn"), seed=3, n_bootstrap=5)
    )
    assert plan.specs == ("a", "b") and plan.aggregate == ("logme", "knn") and plan.n_bootstrap == 5
    with pytest.raises(RequestError, match="bootstrap"):
        RankRequest(data="d", models=("a",), metrics=("logme",), bootstrap_fraction=1.5)
    with pytest.raises(RequestError, match="no parameter 'kk'; valid parameters: ") as info:  # exit code 2
        RankRequest(data="d", models=("a",), metrics=("knn",), metric_params={"knn": {"kk": 3}})
    assert "knn" in str(info.value.fix)


def test_a_metric_that_cannot_apply_is_skipped_and_any_other_exception_is_a_failure(synthetic, monkeypatch):
    import analyzer.ranking.stages.scores as scores_stage

    cache, cands, _labels, _store = synthetic

    def flaky(metric, params, entry, idx, *, pool):
        if entry.key == cands[0].feature_key:
            raise metrics.NotApplicable("logme needs at least 5 samples per class")
        if entry.key == cands[1].feature_key:
            raise ValueError("LAPACK dpotrs: illegal value in argument 4")  # _lapack's "a bug here"
        return 1.0

    monkeypatch.setattr(scores_stage, "compute_on", flaky)
    out = run_scores(
        ScoresInput(cache, cands, ("logme",), {"logme": {}}), InProcessExecutor(), lambda _: None
    )
    assert [(s.model, s.reason) for s in out.skipped] == [
        (cands[0].model, "logme failed: logme needs at least 5 samples per class")
    ]
    [bug] = out.failed
    assert (bug.model, bug.metric) == (cands[1].model, "logme")
    assert "ValueError: LAPACK dpotrs: illegal value" in bug.error and "test_stages.py" in bug.error
    assert out.scores["logme"] == {cands[0].model: None, cands[1].model: None, cands[2].model: 1.0}


def test_scores_stage_gives_the_metrics_values_and_skips_what_cannot_apply(synthetic):
    cache, cands, labels, store = synthetic
    events: list[ProgressEvent] = []
    out = run_scores(
        ScoresInput(cache, cands, ("logme", "leep"), {"logme": {}, "leep": {}}),
        InProcessExecutor(),
        events.append,
    )
    for c in cands:
        assert out.scores["logme"][c.model] == metrics.compute(
            "logme", scoring_features("logme", store.get(c.feature_key).features), labels
        )
        assert out.scores["leep"][c.model] is None  # no source classifier head
    assert [(s.model, s.metric) for s in out.skipped] == [(c.model, "leep") for c in cands]
    # the three inapplicable units count as done from the start; the stage ends at done == total
    assert [(e.stage, e.unit, e.done, e.total) for e in events] == [
        ("scores", "logme", 4, 6),
        ("scores", "logme", 5, 6),
        ("scores", "logme", 6, 6),
    ]


def test_scores_stage_gives_the_same_outcome_in_order_whatever_order_units_finish(synthetic):
    cache, cands, _, _ = synthetic
    inp = ScoresInput(cache, cands, ("knn", "ncti"), {"knn": {}, "ncti": {}})
    reference = run_scores(inp, InProcessExecutor(), lambda e: None)
    for c in cands:  # forget the records, so every unit runs again under the other executor
        for name in ("knn", "ncti"):
            for path in score_records(cache, c.feature_key).folder.glob(f"{name}-*.json"):
                path.unlink()
    executor = ReversedExecutor()
    again = run_scores(inp, executor, lambda e: None)
    assert again == reference
    assert {(t.label, t.model) for t in executor.tasks} == {
        (m, c.model) for m in ("knn", "ncti") for c in cands
    }


def test_scores_stage_runs_no_task_for_a_recorded_score(synthetic):
    cache, cands, _, _ = synthetic
    inp = ScoresInput(cache, cands, ("knn",), {"knn": {}})
    first = run_scores(inp, InProcessExecutor(), lambda e: None)
    executor = ReversedExecutor()
    assert run_scores(inp, executor, lambda e: None) == first and executor.tasks == []


def test_bootstrap_stage_rescores_each_candidate_on_the_same_resamples(synthetic):
    cache, cands, labels, store = synthetic
    scores = run_scores(ScoresInput(cache, cands, ("knn",), {"knn": {}}), InProcessExecutor(), lambda e: None)
    out = run_bootstrap(
        BootstrapInput(cache, cands, ("knn",), {"knn": {}}, scores.scores, n=4, fraction=0.8, seed=7),
        InProcessExecutor(),
        lambda e: None,
    )
    table = out.tables["knn"]
    assert table.shape == (4, 3)
    for b, idx in enumerate(stratified_subsamples(labels, 4, 0.8, 7)):
        for i, c in enumerate(cands):
            assert table[b, i] == metrics.compute("knn", store.get(c.feature_key).features[idx], labels[idx])


def test_bootstrap_stage_refuses_candidates_on_different_samples(synthetic):
    cache, cands, _, _ = synthetic
    stale = Extracted(cands[1].model, cands[1].feature_key, 8, False, "another sample set")
    scores = {"knn": {c.model: 1.0 for c in cands}}
    with pytest.raises(RankingError, match="different samples"):
        run_bootstrap(
            BootstrapInput(
                cache, (cands[0], stale), ("knn",), {"knn": {}}, scores, n=2, fraction=0.5, seed=0
            ),
            InProcessExecutor(),
            lambda e: None,
        )


def test_features_stage_lists_a_failing_candidate_and_extracts_the_others(tmp_path):
    data = make_image_folder(tmp_path / "images", classes=2, per_class=4)
    good = make_torchscript_model(tmp_path / "m.pt", seed=0, width=5)
    missing = f"torchscript:{tmp_path / 'missing.pt'}"
    from analyzer.datasets import open_dataset

    events: list[ProgressEvent] = []
    out = run_features(
        FeaturesInput((missing, good), open_dataset(data), tmp_path / "cache", progress=False),
        InProcessExecutor(),
        events.append,
    )
    assert [c.model for c in out.extracted] == [good] and out.extracted[0].feature_dim == 5
    assert [f.model for f in out.failed] == [missing] and "missing.pt" in out.failed[0].error
    assert [(e.stage, e.model, e.done, e.total, e.error is not None) for e in events] == [
        ("features", missing, 1, 2, False),
        ("features", missing, 1, 2, True),
        ("features", good, 2, 2, False),
    ]


def test_the_report_does_not_depend_on_the_executor(tmp_path):
    from analyzer.ranking import Ranker

    data = make_image_folder(tmp_path / "images", classes=3, per_class=8)
    specs = [make_torchscript_model(tmp_path / f"m{i}.pt", seed=i, width=6 + i) for i in range(3)]
    reports = []
    for executor, cache in ((None, "a"), (ReversedExecutor(), "b")):
        ranker = Ranker(data, cache_dir=tmp_path / cache, progress=False, executor=executor)
        report = ranker.run(specs, ["logme", "knn", "leep"], n_bootstrap=5).to_dict()
        for volatile in ("created", "timings", "environment", "pareto", "recommendation"):
            report.pop(volatile)  # the last two: drawn on measured latency
        for row in report["ranking"]:
            row.pop("extraction_seconds")
            for timed in TIMED_FIELDS:
                row["cost"].pop(timed)
        reports.append(report)
    assert reports[0] == reports[1]


def test_spectrum_stage_scores_data_free_metrics_from_cached_spectra_and_skips_failures(tmp_path):
    from analyzer.ranking.stages.spectrum import SpectrumInput, run_spectrum
    from analyzer.spectrum import _record_name, _records

    layers = [
        {"layer_id": 2, "name": "a", "alpha": 3.0, "log_spectral_norm": 0.5, "flag": "ok"},
        {"layer_id": 3, "name": "b", "alpha": None, "log_spectral_norm": 0.7, "flag": "under-trained?"},
    ]
    _records(tmp_path).put(
        _record_name("w-cached"), {"spec": "x", "weights_id": "w-cached", "spectrum": {"layers": layers}}
    )
    cached = Extracted("torchscript:cached.pt", "k1", 4, False, "d", weights_id="w-cached")
    missing = Extracted(f"torchscript:{tmp_path / 'missing.pt'}", "k2", 4, False, "d", weights_id="w-missing")
    executor = ReversedExecutor()
    events: list[ProgressEvent] = []
    out = run_spectrum(
        SpectrumInput(tmp_path, (cached, missing), ("alpha",), timeout=60), executor, events.append
    )
    assert [t.model for t in executor.tasks] == [missing.model]  # the cached spectrum ran no task
    assert out.scores["alpha"] == {cached.model: 1.5, missing.model: None}  # 3.0 * 0.5; layer b has no fit
    assert list(out.spectra) == [cached.model]
    assert [(s.model, s.metric) for s in out.skipped] == [(missing.model, "alpha")]
    assert [(e.stage, e.label, e.done, e.total) for e in events] == [("spectrum", "weight spectrum", 2, 2)]


def test_a_finished_run_holds_no_store_entry(tmp_path):
    from analyzer.ranking import Ranker

    data = make_image_folder(tmp_path / "images", classes=2, per_class=6)
    specs = [make_torchscript_model(tmp_path / f"m{i}.pt", seed=i, width=5) for i in range(2)]
    Ranker(data, cache_dir=tmp_path / "cache", progress=False).run(specs, ["logme", "knn"], n_bootstrap=3)
    store = FeatureStore(tmp_path / "cache")
    keys = store.keys()
    assert len(keys) == 2 and sorted(store.rm(all=True)) == sorted(
        keys
    )  # no lease left behind in this process
