"""The shipped demo assets are exactly the files their README lists, byte for byte, with their licences."""

from __future__ import annotations

import hashlib
import re

from tests.conftest import PROJECT_ROOT

ROOT = PROJECT_ROOT
ASSETS = ROOT / "assets" / "notmnist"
ROW = re.compile(r"^\| `([^`]+)` \| `([0-9a-f]{64})` \|$")


def _listed_checksums() -> dict[str, str]:
    lines = (ASSETS / "README.md").read_text(encoding="utf-8").splitlines()
    return {m.group(1): m.group(2) for line in lines if (m := ROW.match(line))}


def test_every_shipped_asset_matches_the_checksum_in_its_readme() -> None:
    listed = _listed_checksums()
    assert len(listed) == 16  # seven .pt, seven .json sidecars, target.npz, truth.csv
    for relative, digest in listed.items():
        data = (ASSETS / relative).read_bytes()
        assert hashlib.sha256(data).hexdigest() == digest, relative


def test_no_asset_is_shipped_without_a_listed_checksum() -> None:
    shipped = {p.relative_to(ASSETS).as_posix() for p in ASSETS.rglob("*") if p.is_file()}
    assert shipped - {"README.md"} == set(_listed_checksums())


def test_the_licences_the_shipped_assets_need_are_in_the_project() -> None:
    notices = (ROOT / "THIRD_PARTY_NOTICES.md").read_text(encoding="utf-8")
    for needed in ("BSD 2-Clause", "BSD 3-Clause", "GNU LGPL v3", "MIT", "Yerlan Idelbayev", "PyTorch team"):
        assert needed in notices, needed
    assert "GNU LESSER GENERAL PUBLIC LICENSE" in (ROOT / "LICENSES" / "LGPL-3.0.txt").read_text()
    assert "GNU GENERAL PUBLIC LICENSE" in (ROOT / "LICENSES" / "GPL-3.0.txt").read_text()
    assert (ROOT / "LICENSE").read_text().startswith("MIT License")
