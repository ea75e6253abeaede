"""Package versions and hardware, recorded in every report so a run can be reproduced."""

from __future__ import annotations

import os
import platform
from typing import Any


def environment_info() -> dict[str, Any]:
    """Package versions and hardware, recorded in every report so a run can be reproduced."""
    versions: dict[str, str | None] = {"python": platform.python_version()}
    import importlib.metadata as md

    for package in (
        "numpy",
        "scipy",
        "scikit-learn",
        "torch",
        "timm",
        "faiss-gpu",
        "faiss-cpu",
        "weightwatcher",
    ):
        try:
            versions[package] = md.version(package)
        except md.PackageNotFoundError:
            continue
    from analyzer import __version__

    versions["analyzer"] = __version__
    hardware: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
    }
    try:
        import torch

        hardware["cuda"] = torch.cuda.is_available()
        if torch.cuda.is_available():
            hardware["gpu"] = torch.cuda.get_device_name(0)
    except ImportError:  # torch is a requirement, but a report can still be written without it
        pass
    return {"versions": versions, "hardware": hardware}
