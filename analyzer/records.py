"""One small JSON record cache: ``RecordCache(folder)`` maps a record name to a JSON value in ``<folder>/<name>.json``.

Every small cache of the project uses it (per-feature-entry scores, weight spectra, probe results, dataset checks,
the store's spec memos). Writes go through :func:`analyzer.paths.atomic_write_text`, so a reader sees the old
record or the new one, never half of one, and an interrupted run leaves every finished record readable. A record
that is missing or unreadable reads as absent and is recomputed: the cache is a cache, never the truth.

On disk a record is ``{"value": <the value>}``; a file without that key (a cache of an older layout) reads as
absent.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from analyzer.jsonable import to_jsonable
from analyzer.paths import atomic_write_text


class RecordCache:
    """JSON records under ``folder`` (created on the first write). Names may contain ``/`` for sub-folders."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        """Where the record ``name`` lives."""
        return self.folder / f"{name}.json"

    def get(self, name: str) -> Any:
        """The record's value, or None when it is absent or unreadable (a damaged record is recomputed)."""
        try:
            record = json.loads(self.path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        return record.get("value") if isinstance(record, dict) else None

    def put(self, name: str, value: Any) -> Path:
        """Write ``value`` (numpy scalars and arrays become JSON numbers and lists; NaN and inf become null)."""
        return atomic_write_text(self.path(name), json.dumps({"value": to_jsonable(value)}))

    def __contains__(self, name: str) -> bool:
        return self.path(name).is_file()

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)
