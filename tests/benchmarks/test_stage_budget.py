"""benchmarks/stage_budget.py: a quick run (three tiny timm networks, 40 images) prints one row per ranking stage with
its wall and CPU seconds as shares of the extraction's."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

_PATH = PROJECT_ROOT / "benchmarks" / "stage_budget.py"


@pytest.mark.slow
def test_quick_run_prints_each_stage_with_wall_and_cpu_shares_of_the_extraction() -> None:
    done = subprocess.run(
        [sys.executable, str(_PATH), "--quick"],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
        cwd=PROJECT_ROOT,
        env={
            "OMP_NUM_THREADS": "1",
            "OPENBLAS_NUM_THREADS": "1",
            "PATH": "/usr/bin:/bin",
            "HF_HUB_OFFLINE": "1",
        },
    )
    rows = [line.split("|")[1:-1] for line in done.stdout.splitlines() if line.startswith("| ")]
    assert [r[0].strip() for r in rows] == [
        "stage",
        "features",
        "scoring",
        "spectrum",
        "bootstrap",
        "total (wall)",
    ]
    features = rows[1]
    assert features[2].strip() == "100%" and features[4].strip() == "100%"
    for row in rows[2:5]:  # every stage ran and was timed on both clocks
        assert float(row[1]) > 0 and float(row[3]) > 0
    assert "spectrum seconds per model:" in done.stdout
