"""Disk usage of the store and of the rest of the cache (``cache du``)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from analyzer.paths import CacheLayout
from analyzer.store.files import dir_size


def cache_parts_usage(cache_dir: str | os.PathLike[str]) -> dict[str, int]:
    """Bytes in each top-level folder of the cache other than the feature store (``scores``, ``spectrum``,
    ``checks``, ``probe``, ``runs``, ``zoo``, ...), sorted by name; loose files count under ``(files)``."""
    root = Path(cache_dir)
    usage: dict[str, int] = {}
    if not root.is_dir():
        return usage
    loose = 0
    features = CacheLayout(root).features
    for child in sorted(root.iterdir()):
        if child == features:
            continue
        with contextlib.suppress(OSError):
            if child.is_dir():
                usage[child.name] = dir_size(child)
            elif child.is_file():
                loose += child.stat().st_size
    if loose:
        usage["(files)"] = loose
    return usage


def human_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover - the loop always returns


@dataclass
class StoreUsage:
    """Bytes used by the store: per finished entry, plus partial shards and leftover temp dirs."""

    entries: dict[str, int]
    partial: int
    temp: int

    @property
    def total(self) -> int:
        return sum(self.entries.values()) + self.partial + self.temp
