"""benchmarks/bootstrap_bench.py: a quick synthetic run prints the stage table (one scoring pass, the default and the
every-resample bootstrap) and the before/after table for every aggregate metric."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PROJECT_ROOT

_PATH = PROJECT_ROOT / "benchmarks" / "bootstrap_bench.py"


def test_quick_synthetic_run_prints_the_stage_table_and_before_and_after_per_metric() -> None:
    done = subprocess.run(
        [sys.executable, str(_PATH), "--quick", "--skip-realistic"],
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
        env={"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"},
    )
    rows = [line.split("|")[1].strip() for line in done.stdout.splitlines() if line.startswith("| ")]
    assert rows == [
        "stage",
        "scoring (one pass, 3 candidates)",
        "bootstrap, default (early stop)",
        "bootstrap, every resample",
        "metric",
        "logme",
        "knn",
        "ncti",
        "sfda",
        "all",
    ]
    assert "P(best) early stop vs every resample: largest difference 0.000" in done.stdout
