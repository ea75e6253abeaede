"""Model hubs: offline mode, a bounded reachability check, the local hub caches, and the errors naming them."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from analyzer.errors import BackboneError

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
