"""Importing the metrics (or the pipeline) sets OpenBLAS's spin timeout before numpy loads, unless the user did."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT

PROBE = "import {module}, os, sys; print(os.environ.get('OPENBLAS_THREAD_TIMEOUT'), 'numpy' in sys.modules)"


def _run(module: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(module=module)],
        cwd=PROJECT_ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return done.stdout.strip()


@pytest.mark.parametrize("module", ["metrics", "analyzer"])
def test_importing_the_package_first_shortens_the_openblas_spin_timeout(module: str) -> None:
    assert _run(module).startswith("20 ")


def test_a_timeout_the_user_set_is_kept() -> None:
    assert _run("metrics", OPENBLAS_THREAD_TIMEOUT="28") == "28 True"
