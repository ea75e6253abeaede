"""One small JSON record cache: ``RecordCache(folder)`` maps a record name to a JSON value in ``<folder>/<name>.json``.

Every small cache of the project uses it (per-feature-entry scores, weight spectra, probe results, dataset checks,
the store's spec memos). Writes go through :func:`analyzer.paths.atomic_write_text`, so a reader sees the old
record or the new one, never half of one, and an interrupted run leaves every finished record readable. A record
that is missing or unreadable reads as absent and is recomputed: the cache is a cache, never the truth.

On disk a record is ``{"value": <the value>, "sha256": <hex digest of the value's canonical JSON>}``. A record
whose value does not hash to its checksum (edited or damaged on disk) is never used: it is moved into the folder's
``quarantine/`` (nothing is deleted), said on stderr, and reads as absent, so it is recomputed. A file without
``value`` or without ``sha256`` (a cache of an older layout, unverifiable) reads as absent and is recomputed.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import sys
from pathlib import Path
from typing import Any

from analyzer.jsonable import to_jsonable
from analyzer.paths import atomic_write_text

#: where records that fail their checksum are moved, under a record folder
QUARANTINE_DIR = "quarantine"


def value_digest(value: Any) -> str:
    """sha256 hex of a JSON value's canonical text (sorted keys, no spaces): equal values, equal digests."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


class RecordCache:
    """JSON records under ``folder`` (created on the first write). Names may contain ``/`` for sub-folders."""

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)

    def path(self, name: str) -> Path:
        """Where the record ``name`` lives."""
        return self.folder / f"{name}.json"

    def get(self, name: str) -> Any:
        """The record's value, or None when it is absent, unreadable or unverifiable (recomputed), or fails its
        checksum (then also moved into ``quarantine/`` and said on stderr)."""
        try:
            record = json.loads(self.path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(record, dict) or "value" not in record or "sha256" not in record:
            return None
        if record["sha256"] != value_digest(record["value"]):
            self.set_aside(name, "its value differs from the checksum written with it")
            return None
        return record["value"]

    def problem(self, name: str) -> str | None:
        """Why the record ``name`` cannot be used (unreadable, no checksum, a value that fails it), or None."""
        try:
            record = json.loads(self.path(name).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            return f"unreadable ({exc})"
        if not isinstance(record, dict) or "value" not in record:
            return "not a record"
        if "sha256" not in record:
            return "no checksum (an older layout): unverifiable, recomputed when read"
        if record["sha256"] != value_digest(record["value"]):
            return "its value differs from the checksum written with it"
        return None

    def set_aside(self, name: str, reason: str) -> Path | None:
        """Move the record into ``<folder>/quarantine/`` and say so; None when it cannot be moved (read-only)."""
        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        target = self.folder / QUARANTINE_DIR / f"{name.replace('/', '--')}-{stamp}.json"
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            os.rename(self.path(name), target)
        except OSError:
            target = None  # type: ignore[assignment]
        where = f"moved to {target}" if target is not None else "it could not be moved aside (read-only?)"
        print(
            f"warning: cache record {self.path(name)} is damaged ({reason}); it is not used: {where}, recomputed",
            file=sys.stderr,
        )
        return target

    def put(self, name: str, value: Any) -> Path:
        """Write ``value`` (numpy scalars and arrays become JSON numbers and lists; NaN and inf become null) with
        its checksum."""
        plain = to_jsonable(value)
        return atomic_write_text(self.path(name), json.dumps({"value": plain, "sha256": value_digest(plain)}))

    def __contains__(self, name: str) -> bool:
        return self.path(name).is_file()

    def remove(self, name: str) -> None:
        self.path(name).unlink(missing_ok=True)
