"""Weight files: content hashes, and the JSON sidecars beside them (preprocessing, source accuracy)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
