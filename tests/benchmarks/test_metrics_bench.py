"""benchmarks/metrics_bench.py: a quick run prints the table with its baselines (the LogME baseline's value is
checked in tests/metrics/test_logme.py, where it is the oracle)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import PROJECT_ROOT

_PATH = PROJECT_ROOT / "benchmarks" / "metrics_bench.py"


def test_quick_run_prints_a_row_per_metric_and_the_same_run_reference(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(_PATH), "--sizes", "600x32x5", "--metrics", "logme", "knn", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    names = [line.split()[0] for line in done.stdout.splitlines()[3:] if line and not line.startswith("*")]
    assert names == ["core:gram64+eigh", "core:matmul_nn_f32", "ref:logme_loop", "knn", "logme"]
    assert "* vs ref" in done.stdout
    assert out.exists()
