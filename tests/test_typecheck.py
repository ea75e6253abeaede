"""mypy passes on ``metrics/`` and ``analyzer/`` with the project's configuration (``[tool.mypy]`` in pyproject.toml)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT


@pytest.mark.slow
def test_mypy_passes_on_metrics_and_analyzer():
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed in this environment (bash scripts/setup.sh --test)")
    # The files to check come from [tool.mypy] files; the incremental cache (.mypy_cache) keeps reruns fast.
    result = subprocess.run(
        [sys.executable, "-m", "mypy"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"mypy found errors:\n{result.stdout}{result.stderr}"
    assert "Success" in result.stdout
