"""The full ``demo --zoo`` (the synthetic zoo on digits), in CI only (about 5 minutes on 2 cores).

Locally the reduced demo in ``tests/analyzer/commands/test_demo.py`` covers the same path in seconds; set ``CI=true`` to run this.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import PROJECT_ROOT

pytestmark = pytest.mark.skipif(
    os.environ.get("CI", "").lower() != "true",
    reason="the full demo (about 5 min) runs only in CI (CI=true); tests/analyzer/commands/test_demo.py runs a reduced one",
)


def test_full_zoo_demo_ranks_the_zoo_and_validates_it_against_the_probe(tmp_path: Path) -> None:
    env = {**os.environ, "ANALYZER_CACHE_DIR": str(tmp_path / "cache")}
    done = subprocess.run(
        [sys.executable, "-m", "analyzer", "demo", "--zoo", "--quiet"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    assert "streamlit run app.py" in done.stdout.strip().splitlines()[-1]
    runs = sorted((tmp_path / "cache" / "runs").iterdir())
    assert len(runs) == 1
    for name in ("report.json", "ranking.csv", "report.md", "report.html", "truth.csv"):
        assert (runs[0] / name).is_file(), name
    report = json.loads((runs[0] / "report.json").read_text())
    assert len(report["ranking"]) >= 6 and not report["failed"]
    rows = {row["metric"]: row for row in report["validation"]["rows"]}
    assert {"aggregate", "logme", "knn", "ncti", "sfda"} <= set(rows)
    # the ranking must mean something on this pool: the aggregate agrees with the probe accuracy
    assert rows["aggregate"]["weighted_tau"] > 0.5
