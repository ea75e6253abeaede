"""``pip install .`` gives a working ``backbone-analyzer`` command: built offline into a throwaway venv under tmp
(``--no-deps --no-build-isolation --no-index``), with the shared venv's packages visible to it through a .pth file
(the build uses its setuptools; the command its torch, numpy, ...). Nothing is installed into the shared venv."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

import analyzer

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_pip_install_gives_a_working_backbone_analyzer_command(tmp_path: Path) -> None:
    src = tmp_path / "src"  # a copy: an in-tree build would leave build/ and *.egg-info in the checkout
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy2(ROOT / name, src / name)
    for package in ("analyzer", "metrics"):
        shutil.copytree(ROOT / package, src / package, ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    purelib = Path(sysconfig.get_paths(vars={"base": str(venv), "platbase": str(venv)})["purelib"])
    purelib.mkdir(parents=True, exist_ok=True)
    (purelib / "shared-venv.pth").write_text("\n".join(site.getsitepackages()) + "\n", encoding="utf-8")
    python = venv / "bin" / "python"
    # A user's fresh venv: no PYTHONPATH (earlier tests' Ray clusters may leave the checkout on it in this process)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    install = [
        str(python),
        "-m",
        "pip",
        "install",
        "--no-deps",
        "--no-build-isolation",
        "--no-index",
        "-q",
        str(src),
    ]
    done = subprocess.run(install, capture_output=True, text=True, cwd=tmp_path, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    command = venv / "bin" / "backbone-analyzer"
    version = subprocess.run(
        [str(command), "--version"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert version.returncode == 0 and version.stdout.strip() == f"backbone-analyzer {analyzer.__version__}"
    helped = subprocess.run(
        [str(command), "rank", "--help"], capture_output=True, text=True, cwd=tmp_path, env=env
    )
    assert helped.returncode == 0 and "--n-bootstrap" in helped.stdout
    where = subprocess.run(
        [str(python), "-c", "import analyzer; print(analyzer.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert where.stdout.strip().startswith(str(purelib))  # the installed copy, not the checkout
