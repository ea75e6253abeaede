"""The environment block of every report: versions and hardware, without importing torch when it is not loaded."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def test_cuda_devices_from_the_driver_match_what_torch_reports() -> None:
    script = (
        "import sys\n"
        "from analyzer.environment import cuda_devices, environment_info\n"
        "info = environment_info()\n"
        "assert 'torch' not in sys.modules, 'the environment block imported torch'\n"
        "from_driver = cuda_devices()\n"
        "import torch\n"
        "from_torch = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]\n"
        "assert from_driver == from_torch == cuda_devices(), (from_driver, from_torch)\n"
        "assert info['hardware']['cuda'] == torch.cuda.is_available()\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_ROOT, capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
