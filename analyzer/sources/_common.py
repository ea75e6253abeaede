"""Helpers shared by the source adapters: hashing, sidecars, hub reachability, state dicts, feature capture."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from analyzer.errors import BackboneError

# ---------------------------------------------------------------------------------------------- hashing

_HASH_MEMO: dict[tuple[str, int, int], str] = {}


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's content, memoised on (path, size, mtime) so a long run hashes each file once."""
    stat = path.stat()
    memo_key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if memo_key not in _HASH_MEMO:
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _HASH_MEMO[memo_key] = digest.hexdigest()
    return _HASH_MEMO[memo_key]


def sha256_files(paths: list[Path], root: Path) -> str:
    """One hex sha256 over several files (names relative to ``root`` and their content hashes)."""
    digest = hashlib.sha256()
    for path in sorted(paths):
        digest.update(f"{path.relative_to(root).as_posix()}\0{sha256_file(path)}\n".encode())
    return digest.hexdigest()


# ---------------------------------------------------------------------------------------------- sidecars


def sidecar_paths(path: Path) -> list[Path]:
    """Where a weights file's sidecar may be: ``model.json`` beside ``model.pt``, or ``model.pt.json``."""
    return [path.with_suffix(".json"), path.with_name(path.name + ".json")]


def read_sidecar(path: Path) -> tuple[dict[str, Any], Path] | None:
    """The JSON object beside a weights file and its path, or None when there is none."""
    for candidate in sidecar_paths(path):
        if candidate == path or not candidate.is_file():
            continue
        try:
            data = json.loads(candidate.read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BackboneError(
                f"the sidecar {candidate} is not valid JSON ({exc})", "fix the file or remove it"
            ) from exc
        if not isinstance(data, dict):
            raise BackboneError(
                f"the sidecar {candidate} holds a {type(data).__name__}, not a JSON object",
                'write it as an object, e.g. {"input_size": [3, 224, 224], "mean": [...], "std": [...]}',
            )
        return data, candidate
    return None


#: Sidecar / model-card keys that carry the source-task top-1 accuracy.
ACCURACY_KEYS = ("source_accuracy", "top1", "top1_accuracy", "accuracy", "acc@1", "acc1")


def source_accuracy_from(config: Mapping[str, Any], origin: str) -> float | None:
    """Source-task top-1 as a fraction in [0, 1]; a value in (1, 100] is read as a percentage."""
    for key in ACCURACY_KEYS:
        value = config.get(key)
        if value is None:
            continue
        try:
            accuracy = float(value)
        except (TypeError, ValueError) as exc:
            raise BackboneError(
                f"{key} in {origin} is {value!r}, not a number", "give the top-1 accuracy as a fraction"
            ) from exc
        if 1.0 < accuracy <= 100.0:
            accuracy /= 100.0
        if not 0.0 <= accuracy <= 1.0:
            raise BackboneError(
                f"{key} in {origin} is {value!r}", "give the top-1 accuracy as a fraction in [0, 1]"
            )
        return accuracy
    return None


# ---------------------------------------------------------------------------------------------- the hub

_OFFLINE_VARS = ("ANALYZER_OFFLINE", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_REACHABLE: dict[str, bool] = {}
#: Seconds to wait for a TCP connection before calling a host unreachable (nothing may hang).
CONNECT_TIMEOUT_S = 3.0


def offline_requested() -> bool:
    """True when the environment asks for offline mode (``HF_HUB_OFFLINE``, ``TRANSFORMERS_OFFLINE``, ...)."""
    return any(
        os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"} for name in _OFFLINE_VARS
    )


def host_reachable(url: str) -> bool:
    """Whether ``url``'s host accepts a TCP connection within :data:`CONNECT_TIMEOUT_S` (memoised per host).

    Offline mode requested in the environment counts as unreachable without trying.
    """
    if offline_requested():
        return False
    parsed = urlparse(url)
    host = parsed.hostname or url
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    if host not in _REACHABLE:
        try:
            with socket.create_connection((host, port), timeout=CONNECT_TIMEOUT_S):
                _REACHABLE[host] = True
        except OSError:
            _REACHABLE[host] = False
    return _REACHABLE[host]


def hf_endpoint() -> str:
    from huggingface_hub import constants

    return constants.ENDPOINT


@contextlib.contextmanager
def hf_offline_unless_reachable() -> Iterator[bool]:
    """Run a Hugging Face hub call offline (cache only) when the hub cannot be reached; yields ``online``.

    huggingface_hub reads ``constants.HF_HUB_OFFLINE`` at call time, so flipping it here makes a cached model
    load without a connection attempt, and an uncached one fail at once instead of waiting on timeouts.
    """
    from huggingface_hub import constants

    online = host_reachable(hf_endpoint())
    previous = constants.HF_HUB_OFFLINE
    if not online:
        constants.HF_HUB_OFFLINE = True
    try:
        yield online
    finally:
        constants.HF_HUB_OFFLINE = previous


def hf_cached_file(repo_id: str, filenames: tuple[str, ...], revision: str | None = None) -> Path | None:
    """The first of ``filenames`` present in the local Hugging Face cache for ``repo_id``, or None."""
    from huggingface_hub import try_to_load_from_cache

    for name in filenames:
        found = try_to_load_from_cache(repo_id, name, revision=revision)
        if isinstance(found, str):
            return Path(found)
    return None


def snapshot_revision(path: Path) -> str | None:
    """The commit hash in a hub cache path ``.../snapshots/<commit>/file``, or None."""
    parts = path.parts
    if "snapshots" in parts:
        index = parts.index("snapshots")
        if index + 1 < len(parts):
            return parts[index + 1]
    return None


def url_cache_file(url: str) -> Path:
    """Where ``torch.hub.load_state_dict_from_url`` keeps ``url``'s download."""
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def hub_error(model: str, local_form: str, cause: BaseException | str | None = None) -> BackboneError:
    """The error for a hub model that cannot be fetched: names the model and how to pass local weights."""
    why = str(cause) if cause else "the model hub is not reachable and they are not in the local cache"
    return BackboneError(
        f"cannot fetch the weights of {model}: {why}",
        f"download them on a machine with network access and load them locally: {local_form}",
    )


def weights_id_with_kwargs(file_hash: str, model_kwargs: Mapping[str, Any]) -> str:
    """A local file's content hash, extended by the sidecar's constructor arguments when there are any.

    ``model_kwargs`` such as ``global_pool`` change the features of the same weights file, so they must
    change the feature-store key too.
    """
    if not model_kwargs:
        return file_hash
    blob = json.dumps(dict(model_kwargs), sort_keys=True, default=str)
    return f"{file_hash}+kwargs:{hashlib.sha256(blob.encode()).hexdigest()[:16]}"


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


# ---------------------------------------------------------------------------------------------- features


def pool_features(tensor: torch.Tensor) -> torch.Tensor:
    """``N×D`` from a layer output: global average over space (``N×C×H×W``) or tokens (``N×T×C``)."""
    if tensor.ndim == 4:
        return tensor.mean(dim=(2, 3))
    if tensor.ndim == 3:
        return tensor.mean(dim=1)
    return tensor.flatten(1)


def first_tensor(output: Any) -> torch.Tensor:
    """The tensor in a layer's output (tuples, lists, dicts and HF ``ModelOutput`` take their first tensor)."""
    if torch.is_tensor(output):
        return output
    values = output.values() if isinstance(output, Mapping) else output
    if isinstance(values, tuple | list) or isinstance(output, Mapping):
        for value in values:
            if torch.is_tensor(value):
                return value
    to_tuple = getattr(output, "to_tuple", None)
    if callable(to_tuple):
        return first_tensor(to_tuple())
    raise TypeError(f"layer output of type {type(output).__name__} holds no tensor")


class _StopForward(Exception):
    """Raised by a capture hook to skip the rest of the forward pass once the wanted layer has run."""


class HookExtractor(nn.Module):
    """Features from a named submodule of ``model``: its input (``mode="input"``, the classifier head) or its
    output (``mode="output"``, an intermediate block), global-average-pooled to ``N×D``.

    ``logits(output)`` maps the full model's output to source logits, or is None when the model has no head.
    ``forward`` stops the pass at the captured layer when logits are not wanted; ``forward_both`` runs the
    model once and returns features and logits together.
    """

    def __init__(
        self,
        model: nn.Module,
        layer: str,
        *,
        mode: str,
        logits: Callable[[Any], torch.Tensor] | None,
    ) -> None:
        super().__init__()
        self.model = model
        self.layer = layer
        self.mode = mode
        self._logits = logits
        self._captured: torch.Tensor | None = None
        self._stop = False
        target = model.get_submodule(layer)
        if mode == "input":
            target.register_forward_pre_hook(self._capture_input)
        else:
            target.register_forward_hook(self._capture_output)

    def _capture_input(self, _module: nn.Module, args: tuple[Any, ...]) -> None:
        self._captured = first_tensor(args)
        if self._stop:
            raise _StopForward

    def _capture_output(self, _module: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
        self._captured = first_tensor(output)
        if self._stop:
            raise _StopForward

    def _run(self, batch: torch.Tensor, stop: bool) -> tuple[Any, torch.Tensor]:
        """``(the model's output or None when stopped early, the captured layer's tensor)``."""
        self._captured, self._stop = None, stop
        try:
            output = self.model(batch)
        except _StopForward:
            output = None
        finally:
            self._stop = False
        captured, self._captured = self._captured, None
        if captured is None:
            raise RuntimeError(f"layer {self.layer!r} did not run in the forward pass")
        return output, captured

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        _, captured = self._run(batch, stop=True)
        return pool_features(captured)

    def forward_both(self, batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        output, captured = self._run(batch, stop=False)
        return pool_features(captured), (self._logits(output) if self._logits is not None else None)

    def classify(self, batch: torch.Tensor) -> torch.Tensor:
        if self._logits is None:
            raise RuntimeError("this backbone has no classifier head")
        output, _ = self._run(batch, stop=False)
        return self._logits(output)


def unknown_layer_error(layer: str, model: nn.Module, spec: str, extra: str = "") -> BackboneError:
    """A feature layer that is not a submodule: suggest close module names, else the top-level blocks."""
    import difflib

    names = [name for name, _ in model.named_modules() if name]
    close = difflib.get_close_matches(layer, names, n=5, cutoff=0.5)
    choices = close or [name for name, _ in model.named_children()][:12]
    return BackboneError(
        f"feature layer {layer!r} is not a module of {spec}",
        f"name a submodule (dotted path), e.g. {', '.join(choices)}{extra}",
    )


def count_params(module: nn.Module) -> int:
    """Number of distinct parameter elements (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for param in module.parameters():
        if id(param) not in seen:
            seen.add(id(param))
            total += param.numel()
    return total


def freeze(module: nn.Module, device: torch.device) -> nn.Module:
    """Eval mode, no gradients, on ``device``."""
    module.eval()
    for param in module.parameters():
        param.requires_grad_(False)
    return module.to(device)


def probe(
    extractor: nn.Module, input_size: tuple[int, int, int], device: torch.device, spec: str
) -> tuple[int, int | None]:
    """Run a 2-image batch through ``extractor``: ``(feature_dim, num_source_classes or None)``.

    Fails at load time, with the spec in the message, rather than half-way through an extraction.
    """
    batch = torch.zeros((2, *input_size), device=device)
    both = getattr(extractor, "forward_both", None)
    try:
        with torch.inference_mode():
            features, logits = both(batch) if callable(both) else (extractor(batch), None)
    except Exception as exc:  # any failure of user-supplied models is a load error
        raise BackboneError(
            f"{spec} fails on a 2×{input_size[0]}×{input_size[1]}×{input_size[2]} batch ({brief(exc, 300)})",
            "check the input size (the sidecar's input_size, or extract's --image-size) matches what the model "
            "accepts, and the feature layer",
        ) from exc
    if features.ndim != 2 or features.shape[0] != 2:
        raise BackboneError(
            f"{spec} returns features of shape {tuple(features.shape)} for a batch of 2, not N×D",
            "the module's forward must return one feature vector per image",
        )
    if logits is not None and (logits.ndim != 2 or logits.shape[0] != 2):
        raise BackboneError(
            f"{spec} returns source logits of shape {tuple(logits.shape)} for a batch of 2, not N×C",
            "the classify output must be one logit vector per image",
        )
    return int(features.shape[1]), (int(logits.shape[1]) if logits is not None else None)
