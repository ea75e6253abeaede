"""Smoke test of benchmarks/gpu_check.py: it runs here (on the CPU when there is no GPU, saying so), prints its table
and imports none of faiss, Ray or weightwatcher (a bare GPU image lacks them)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_gpu_check_runs_quick_and_needs_no_faiss_ray_or_weightwatcher():
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick"],
        capture_output=True,
        text=True,
        timeout=900,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    assert "extract/s" in out and "bare AMP/s" in out and "cifar10_resnet20" in out
    import torch

    if not torch.cuda.is_available():
        assert "no CUDA device: running on the CPU instead" in out
    assert "imported" not in done.stderr  # the script's own check of faiss / ray / weightwatcher
