"""The weight spectrum runs beside the bootstrap when the aggregate does not need it, and changes nothing else."""

from __future__ import annotations

import threading

import pytest

import analyzer.ranking.stages.spectrum as spectrum_stage
from analyzer.ranking import Ranker
from analyzer.ranking.background import BackgroundStage
from analyzer.ranking.progress import ProgressEvent
from tests.fixtures.make_run import make_image_folder, make_torchscript_model


def _event(stage: str, done: int) -> ProgressEvent:
    return ProgressEvent(stage, "m", f"{stage} {done}", done, 2)


def test_a_background_stage_hands_its_events_over_in_the_callers_thread_and_returns_its_value() -> None:
    seen: list[tuple[str, str]] = []

    def run(sink):
        for i in (1, 2):
            sink(_event("weight spectrum", i))
        return threading.current_thread().name

    stage = BackgroundStage(run, lambda e: seen.append((e.message, threading.current_thread().name)), "bg")
    assert stage.result() == "bg"  # it ran in its own thread ...
    main = threading.current_thread().name
    assert seen == [("weight spectrum 1", main), ("weight spectrum 2", main)]  # ... its events came here
    assert stage.seconds > 0


def test_a_background_stage_reraises_its_error_in_the_caller() -> None:
    def run(sink):
        raise KeyError("lost")

    with pytest.raises(KeyError, match="lost"):
        BackgroundStage(run, lambda e: None, "bg").result()


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    root = tmp_path_factory.mktemp("pool")
    data = make_image_folder(root / "images", classes=3, per_class=10)
    specs = [make_torchscript_model(root / f"m{i}.pt", seed=i, width=8 + 4 * i) for i in range(3)]
    return data, specs


@pytest.mark.parametrize(
    ("aggregate", "beside"), [(["logme", "knn"], True), (["logme", "knn", "alpha"], False)]
)
def test_the_spectrum_runs_beside_the_bootstrap_only_when_the_aggregate_does_not_need_it(
    pool, tmp_path, monkeypatch, aggregate, beside
) -> None:
    data, specs = pool
    threads: list[str] = []
    original = spectrum_stage.spectrum_one

    def spy(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return original(*args, **kwargs)

    monkeypatch.setattr(spectrum_stage, "spectrum_one", spy)
    events: list[str] = []
    ranker = Ranker(
        data, cache_dir=tmp_path / "cache", progress=False, on_progress=lambda e: events.append(e.label)
    )
    result = ranker.run(specs, ["logme", "knn", "alpha"], aggregate=aggregate, n_bootstrap=10)
    assert threads == ["weight-spectrum" if beside else threading.current_thread().name] * len(specs)
    assert set(result.spectrum) == set(specs) and all(
        r.scores.get("alpha") is not None for r in result.ranking
    )
    assert result.timings["spectrum_seconds"] > 0
    assert events.count("weight spectrum") == len(specs)
    # a stage's events arrive together: the command's one bar per stage is never closed early
    first = events.index("weight spectrum")
    assert events[first : first + len(specs)] == ["weight spectrum"] * len(specs)
