"""Sequential early stopping of the bootstrap: same resamples, P(best) and intervals within Monte Carlo error."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from analyzer.executors import InProcessExecutor
from analyzer.ranking import stopping
from analyzer.ranking.stages.bootstrap import BootstrapInput, run_bootstrap
from analyzer.ranking.stages.features import Extracted
from analyzer.ranking.stages.scores import ScoresInput, run_scores
from analyzer.ranking.statistics import bootstrap_summary
from analyzer.store import FeatureStore, hash_sequence

METRICS = ("logme", "knn")
HIB = {"logme": True, "knn": True}


@pytest.fixture(autouse=True, scope="module")
def _one_thread_per_library():
    with threadpool_limits(limits=1):
        yield


def _pool(
    tmp_path, separations: list[float], seed: int = 0, *, same_noise: bool = False
) -> tuple[tuple[Extracted, ...], dict]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(4), 30)
    ids = [f"s{i}" for i in range(len(labels))]
    store = FeatureStore(tmp_path)
    centres = rng.normal(size=(4, 12))
    cands = []
    noise = rng.normal(size=(len(labels), 12))
    for i, sep in enumerate(separations):
        if not same_noise:
            noise = rng.normal(size=(len(labels), 12))
        features = (noise + sep * centres[labels]).astype(np.float32)
        store.put(f"c{i}", features=features, labels=labels, sample_ids=ids, source_probs=None, meta={})
        cands.append(Extracted(f"c{i}", f"c{i}", 12, False, hash_sequence(ids)))
    scores = run_scores(
        ScoresInput(tmp_path, tuple(cands), METRICS, {m: {} for m in METRICS}),
        InProcessExecutor(),
        lambda e: None,
    )
    return tuple(cands), scores.scores


def _bootstrap(tmp_path, cands, scores, n: int, early: bool):
    inp = BootstrapInput(
        tmp_path, cands, METRICS, {m: {} for m in METRICS}, scores, n, 0.8, 3, early_stop=early
    )
    out = run_bootstrap(inp, InProcessExecutor(), lambda e: None)
    models = [c.model for c in cands]
    summary = bootstrap_summary(models, out.tables, HIB, n_resamples=out.n_used, seed=3, fraction=0.8)
    return out, summary


def test_early_stopping_agrees_with_the_full_bootstrap_within_monte_carlo_error(tmp_path):
    cands, scores = _pool(tmp_path, [0.2, 0.45, 0.5, 1.2])  # one clear leader, a close pair behind it
    full, (p_full, intervals_full, _) = _bootstrap(tmp_path, cands, scores, 200, early=False)
    stopped, (p_stop, intervals_stop, _) = _bootstrap(tmp_path, cands, scores, 200, early=True)
    m = stopped.n_used
    assert full.n_used == 200 and m < 200
    for metric in METRICS:  # the stopped run's resamples are the full run's first m
        np.testing.assert_array_equal(stopped.tables[metric], full.tables[metric][:m])
    for model, p in p_full.items():
        error = np.sqrt(max(p * (1 - p), 0.25 / m) * (1 / m - 1 / 200))
        assert abs(p_stop[model] - p) <= 3 * error
        assert all(abs(a - b) <= 1 for a, b in zip(intervals_stop[model], intervals_full[model], strict=True))


def test_a_close_race_runs_every_requested_resample(tmp_path):
    cands, scores = _pool(
        tmp_path, [0.6, 0.6, 0.6], same_noise=True
    )  # three identical candidates: a 3-way tie
    stopped, (p_best, _, _) = _bootstrap(tmp_path, cands, scores, 100, early=True)
    assert stopped.n_used == 100
    assert p_best == pytest.approx({c.model: 1 / 3 for c in cands})


def test_p_best_counts_resamples_as_the_report_does():
    rng = np.random.default_rng(2)
    tables = {"logme": rng.normal(size=(30, 4)), "knn": rng.integers(0, 3, size=(30, 4)).astype(float)}
    p, _, _ = bootstrap_summary(list("abcd"), tables, HIB, n_resamples=30, seed=0, fraction=0.8)
    np.testing.assert_allclose(stopping.p_best(tables, HIB, 30), list(p.values()))
    assert list(stopping.rounds(130, early_stop=True)) == [(0, 60), (60, 120), (120, 130)]
    assert list(stopping.rounds(130, early_stop=False)) == [(0, 130)]


def test_rounds_are_made_lazily_so_a_huge_count_allocates_nothing_up_front():
    spans = stopping.rounds(10**20, early_stop=True)
    assert next(spans) == (0, 60) and next(spans) == (60, 120)


def test_a_candidate_that_never_won_is_ruled_out_of_a_tie_from_59_resamples():
    """One-sided 95 % Clopper-Pearson: 0 wins in m resamples bounds P(best) by 1 - 0.05^(1/m), below the 5 % tie
    line from m = 59; that is why the first look comes after 60 resamples."""
    assert stopping.p_best_bounds(0.0, 59)[1] < 0.05 <= stopping.p_best_bounds(0.0, 58)[1]
    assert stopping.p_best_bounds(1.0, 60) == (pytest.approx(0.05 ** (1 / 60)), 1.0)
    lower, upper = stopping.p_best_bounds(0.5, 60)
    assert 0.05 < lower < 0.5 < upper < 1.0


def _tables_with_wins(wins: list[int], m: int) -> dict[str, np.ndarray]:
    """One metric whose table makes candidate i the best in ``wins[i]`` of ``m`` resamples."""
    table = np.zeros((m, len(wins)))
    row = 0
    for i, count in enumerate(wins):
        table[row : row + count, i] = 1.0
        row += count
    assert row == m
    return {"logme": table}


def test_the_bootstrap_stops_only_when_every_candidates_side_of_the_tie_line_is_known():
    hib = {"logme": True}
    assert stopping.settled(_tables_with_wins([60, 0, 0], 60), hib, 60)  # a clear leader
    assert not stopping.settled(_tables_with_wins([59, 1, 0], 60), hib, 60)  # 1 win in 60: could be >= 5 %
    assert not stopping.settled(_tables_with_wins([30, 30, 0], 60), hib, 60)  # a race: P(best) SE 0.065
    assert stopping.settled(_tables_with_wins([58, 0, 0], 58), hib, 58) is False  # too few to rule out a tie
