"""benchmarks/cache_checksum_bench.py: a quick run prints one row per operation with its same-run ratio."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import PROJECT_ROOT

_PATH = PROJECT_ROOT / "benchmarks" / "cache_checksum_bench.py"


def test_quick_run_prints_the_write_and_read_rows_with_and_without_verification() -> None:
    done = subprocess.run(
        [sys.executable, str(_PATH), "--quick"], capture_output=True, text=True, timeout=300, check=True
    )
    lines = done.stdout.splitlines()
    assert lines[0].startswith("entry: N = 2000, D = 64")
    rows = [line[:28].strip() for line in lines[2:]]
    assert rows == [
        "write, no checksums",
        "write, checksums",
        "read, verified before",
        "read, verifying (1st read)",
        "hash only (sha256 of files)",
    ]
    assert lines[2].split()[-2] == "1.00" and lines[4].split()[-2] == "1.00"  # each baseline's own ratio
