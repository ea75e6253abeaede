"""``--device``: the one parser of device strings, so a bad one raises the same error from every command."""

from __future__ import annotations

import torch

from analyzer.errors import DeviceError

__all__ = ["resolve_device"]


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"`` -> CUDA when available, else CPU; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` as given.

    Raises :class:`DeviceError` for a string torch does not know, or a CUDA device this machine lacks.
    """
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise DeviceError(
            f"--device {device!r} is not a torch device",
            "pass --device cpu, cuda or cuda:N (or leave it out)",
        ) from exc
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(
                f"--device {device!r} was requested but no CUDA device is available",
                "pass --device cpu, or leave --device out to auto-detect",
            )
        if parsed.index is not None and parsed.index >= torch.cuda.device_count():
            raise DeviceError(
                f"--device {device!r}: this machine has {torch.cuda.device_count()} CUDA device(s)",
                f"pass --device cuda:0 .. cuda:{torch.cuda.device_count() - 1}",
            )
    elif parsed.type != "cpu":
        raise DeviceError(
            f"--device {device!r}: only cpu and cuda devices are supported", "pass --device cpu or cuda"
        )
    return parsed
