"""Package versions and hardware, recorded in every report so a run can be reproduced."""

from __future__ import annotations

import os
import platform
import sys
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
    gpus = cuda_devices()
    hardware["cuda"] = bool(gpus)
    if gpus:
        hardware["gpu"] = gpus[0]
    return {"versions": versions, "hardware": hardware}


def cuda_devices() -> list[str]:
    """Names of the CUDA devices this process sees, as ``torch.cuda`` reports them; [] without any.

    Asked of torch when it is already imported; otherwise of the CUDA driver (libcuda, whose device list honours
    ``CUDA_VISIBLE_DEVICES`` as torch's does): a cached run never needs torch, and importing it only to write
    this line would be most of that run's time.
    """
    torch = sys.modules.get("torch")
    if torch is not None:
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [torch.cuda.get_device_name(i) for i in range(count)]
    import ctypes

    try:
        driver = ctypes.CDLL("nvcuda.dll" if sys.platform == "win32" else "libcuda.so.1")
    except OSError:  # no NVIDIA driver: no CUDA device
        return []
    count_out = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count_out)) != 0:
        return []  # a driver without a usable device (CUDA_VISIBLE_DEVICES="", a broken install)
    names = []
    for index in range(count_out.value):
        device = ctypes.c_int(0)
        name = ctypes.create_string_buffer(256)
        if (
            driver.cuDeviceGet(ctypes.byref(device), index) == 0
            and driver.cuDeviceGetName(name, 256, device) == 0
        ):
            names.append(name.value.decode("utf-8", errors="replace"))
    return names
