"""benchmarks/bootstrap_bench.py: a quick synthetic run prints the before/after table for every aggregate metric."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PROJECT_ROOT

_PATH = PROJECT_ROOT / "benchmarks" / "bootstrap_bench.py"


def test_quick_synthetic_run_prints_before_and_after_per_metric() -> None:
    done = subprocess.run(
        [sys.executable, str(_PATH), "--quick", "--skip-realistic"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    rows = [line.split("|")[1].strip() for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows[1:] == ["logme", "knn", "ncti", "sfda", "all"]
    assert "bootstrap / one scoring pass: before" in done.stdout
