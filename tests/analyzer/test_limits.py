"""analyzer.limits: bounds refused with the bound, memory estimated and refused before it is allocated."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from analyzer import limits
from analyzer.errors import EXIT_OK, EXIT_USAGE, ConfigError
from tests.analyzer.commands import test_bad_inputs
from tests.analyzer.commands.test_bad_inputs import World, argv_for, run_cli

world = test_bad_inputs.world  # the bad-input suite's small real inputs (a module-scoped fixture)


def test_a_value_outside_its_bound_names_the_flag_and_the_bound() -> None:
    limits.check_range(200, flag="--n-bootstrap", low=0, high=limits.MAX_N_BOOTSTRAP)
    with pytest.raises(
        ConfigError, match="--n-bootstrap 100001 is out of range: it must be from 0 to 100 000"
    ):
        limits.check_range(100_001, flag="--n-bootstrap", low=0, high=limits.MAX_N_BOOTSTRAP)


def test_the_bootstrap_estimate_counts_index_sets_and_score_tables() -> None:
    # 1000 resamples of 80 % of 100 samples (int64) + 1000 x 3 candidates x 2 metrics (float64)
    assert limits.bootstrap_bytes(1000, 100, 0.8, 3, 2) == 1000 * 80 * 8 + 1000 * 3 * 2 * 8


def test_memory_beyond_the_machine_is_refused_with_the_estimate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "available_memory", lambda: 2**30)
    limits.check_memory(2**29, what="x", fix="y")
    with pytest.raises(
        ConfigError,
        match=r"needs about 4\.0 GiB of memory, more than this machine has available \(1\.0 GiB\)",
    ):
        limits.check_memory(4 * 2**30, what="x", fix="y")


def test_an_extraction_larger_than_the_memory_is_refused_before_any_batch(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limits, "available_memory", lambda: 10_000)  # bytes: no extraction fits
    code, _, err = run_cli(argv_for("extract", world, tmp_path), capfd)
    assert code == EXIT_USAGE and "extracting torchscript:" in err and "needs about" in err
    assert "--batch-size" in err


def test_a_bootstrap_larger_than_the_memory_is_refused_with_its_estimate(
    world: World, tmp_path: Path, capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_cli(argv_for("extract", world, tmp_path), capfd)[0] == EXIT_OK  # features cached first
    real = limits.extraction_bytes
    monkeypatch.setattr(limits, "extraction_bytes", lambda *a: 0 * real(*a))
    monkeypatch.setattr(limits, "available_memory", lambda: 4 * 2**20)
    code, _, err = run_cli(argv_for("rank", world, tmp_path, n_bootstrap="100000"), capfd)
    assert code == EXIT_USAGE and "the bootstrap (100000 resamples of 18 samples) needs about" in err
    assert "smaller --n-bootstrap" in err and not (tmp_path / "run").exists()


def test_rounds_of_a_huge_bootstrap_cost_nothing_up_front() -> None:
    from analyzer.ranking import stopping

    assert next(iter(stopping.rounds(10**20, early_stop=False))) == (0, 10**20)
    assert np.isfinite(limits.MAX_N_BOOTSTRAP)
