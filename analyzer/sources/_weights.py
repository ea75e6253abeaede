"""State dicts: reading a checkpoint whatever its wrapper, and loading it into a model with checked keys."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import nn

from analyzer.errors import BackboneError

# ---------------------------------------------------------------------------------------------- state dicts

#: Wrapper keys training scripts put around a state dict, tried in this order.
WRAPPER_KEYS = ("state_dict", "model", "model_state_dict", "model_state", "net", "network", "module")
#: Prefixes wrappers add to every key (DataParallel/DDP, torch.compile).
STRIP_PREFIXES = ("module.", "_orig_mod.")


def _is_state_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and len(obj) > 0 and all(torch.is_tensor(v) for v in obj.values())


def torch_load_reason(exc: BaseException) -> str:
    """Why torch could not read a file, in one short clause for a user.

    torch's own texts run to paragraphs about zip internals and may advise ``weights_only=False``, which would
    let the file run code: that advice is never relayed.
    """
    text = " ".join(str(exc).split())
    if "weights_only" in text or type(exc).__name__ == "UnpicklingError":
        return (
            "not a tensors-only PyTorch file: it is damaged, not a torch file at all, or holds Python objects "
            "the analyzer refuses to unpickle (that could run code)"
        )
    return brief(exc)


def brief(exc: BaseException, limit: int = 200) -> str:
    """``Type: first sentence`` of an exception from a library, cut at a word (with "…") beyond ``limit``
    characters, so a message that quotes it is never cut mid-word and never runs to a paragraph."""
    text = " ".join(str(exc).split())
    first = text.split(". ")[0].rstrip(".")
    if len(first) > limit:
        first = first[:limit].rsplit(" ", 1)[0] + " …"
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    """Tensors of a local checkpoint: ``.safetensors``, or a ``.pth``/``.pt``/``.bin`` state dict.

    Unwraps ``{"state_dict": ...}``-style wrappers (:data:`WRAPPER_KEYS`) and strips ``module.`` /
    ``_orig_mod.`` prefixes. Pickled checkpoints are read with ``weights_only=True``: no code runs.
    """
    state: Any  # a state dict, or a checkpoint wrapping one (unwrapped below)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:  # safetensors raises its own error types
            raise BackboneError(
                f"cannot read {path} as safetensors ({exc})", "check the file is complete"
            ) from exc
    else:
        try:
            state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:  # unpickling errors come in many types
            raise BackboneError(
                f"cannot read {path} as a PyTorch state dict ({torch_load_reason(exc)})",
                "save the weights with torch.save(model.state_dict(), path) or as .safetensors",
            ) from exc
    for _ in range(3):  # wrappers can nest, e.g. {"model": {"state_dict": ...}}
        if _is_state_dict(state):
            break
        if isinstance(state, Mapping):
            inner = next((state[k] for k in WRAPPER_KEYS if isinstance(state.get(k), Mapping)), None)
            if inner is not None:
                state = inner
                continue
        break
    if not _is_state_dict(state):
        keys = list(state)[:10] if isinstance(state, Mapping) else type(state).__name__
        raise BackboneError(
            f"{path} holds no state dict of tensors (found {keys})",
            f"save model.state_dict() itself, or wrap it under one of the keys {', '.join(WRAPPER_KEYS)}",
        )
    cleaned: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        for prefix in STRIP_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix) :]
        cleaned[key] = value
    return cleaned


def _listing(keys: list[str], limit: int = 8) -> str:
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def load_checked(model: nn.Module, state: Mapping[str, torch.Tensor], path: Path, arch: str) -> None:
    """``model.load_state_dict(state)`` that reports every missing, unexpected or mis-shaped key.

    Only missing ``num_batches_tracked`` buffers are tolerated: they count BatchNorm updates during
    training and do not change eval outputs, and many published checkpoints drop them.
    """
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("num_batches_tracked")]
    unexpected = [k for k in state if k not in own]
    mismatched = [
        f"{k} {tuple(state[k].shape)} vs {tuple(own[k].shape)}"
        for k in own
        if k in state and tuple(state[k].shape) != tuple(own[k].shape)
    ]
    if missing or unexpected or mismatched:
        problems = []
        if missing:
            problems.append(f"missing {len(missing)} keys ({_listing(missing)})")
        if unexpected:
            problems.append(f"unexpected {len(unexpected)} keys ({_listing(unexpected)})")
        if mismatched:
            problems.append(
                f"{len(mismatched)} shape mismatches, checkpoint vs model ({_listing(mismatched, 4)})"
            )
        raise BackboneError(
            f"the checkpoint {path} does not fit the architecture {arch}: " + "; ".join(problems),
            "check that the architecture name matches the checkpoint, or give constructor arguments in the "
            'sidecar JSON ("model_kwargs")',
        )
    model.load_state_dict(dict(state), strict=False)
