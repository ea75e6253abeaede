"""Shared fixtures. Tests never reach the network; data from ../shared is skipped when absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No test may reach a model hub: fail fast instead of hanging on a download.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SHARED = PROJECT_ROOT.parent / "shared"
REFERENCE = SHARED / "reference"
BENCHMARKS = SHARED / "benchmarks"


def require_shared(path: Path) -> Path:
    """Skip the calling test with a clear reason when ``path`` (under ../shared) is absent."""
    if not path.exists():
        pytest.skip(f"{path} is absent: the shared reference data is not checked out beside this repository")
    return path


@pytest.fixture()
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh cache directory, also set as $ANALYZER_CACHE_DIR."""
    path = tmp_path / "cache"
    monkeypatch.setenv("ANALYZER_CACHE_DIR", str(path))
    return path
