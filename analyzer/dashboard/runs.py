"""The runs the dashboard can show and the report files it offers for download.

A run is a directory ``<cache>/runs/<YYYYmmdd-HHMMSS>-<name>/`` holding ``report.json`` (written last and
atomically by the ranking, so a directory without it is unfinished and left out). Reports are read only through
:meth:`analyzer.result.RankingResult.load` / ``from_bytes``. Times are shown in the viewer's local time zone, the
same way in the picker and in the header.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from analyzer.paths import CacheLayout
from analyzer.result import RankingResult

#: The files a run directory holds, by download format.
REPORT_FILES = {"csv": "ranking.csv", "json": "report.json", "md": "report.md", "html": "report.html"}
MIME_TYPES = {"csv": "text/csv", "json": "application/json", "md": "text/markdown", "html": "text/html"}
TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
#: What a first-time user reads under "No ranking runs yet" (``{env}``: the cache variable's name).
FIRST_RUN_HELP = (
    "1. **Offline demo** (no downloads): `python -m analyzer demo`\n"
    "2. **Your data and candidates**:\n"
    "   ```\n   python -m analyzer rank --data path/to/image_folder \\\n"
    "       --models timm:resnet18.a1_in1k,timm:efficientnet_b0.ra_in1k\n   ```\n"
    "3. **From here**: fill in the *New ranking* form below.\n\n"
    "Runs elsewhere? Start with `{env}=/path/to/cache streamlit run app.py`, or open a report.json."
)
_RUN_DIR_RE = re.compile(r"^(\d{8}-\d{6})(?:-(.*))?$")


@dataclass(frozen=True)
class RunInfo:
    """One run directory, found without reading its (possibly large) report.json.

    ``started``: local time parsed from the directory's ``YYYYmmdd-HHMMSS`` prefix (the ranking names runs in local
    time), None when the directory does not follow the convention; ``mtime``: report.json's modification time
    (seconds since the epoch), which also keys the dashboard's caches; ``label``: what the picker shows, unique.
    """

    path: Path
    name: str
    started: datetime | None
    mtime: float
    label: str = ""

    @property
    def report_path(self) -> Path:
        return self.path / REPORT_FILES["json"]


def runs_dir(cache_dir: str | os.PathLike[str]) -> Path:
    """``<cache>/runs``: where ``rank`` writes a run when no ``--out`` is given."""
    return CacheLayout(cache_dir).runs_dir


def list_runs(cache_dir: str | os.PathLike[str]) -> list[RunInfo]:
    """The finished runs under ``<cache>/runs/``, newest first, each with a unique readable label.

    Order: the start time in the directory name (report.json's mtime when there is none), then the mtime. The
    label is "start time · name" (time first, so labels cut short by a narrow sidebar still differ); runs that
    would share a label get their directory name appended.
    """
    found: list[tuple[Path, str, datetime | None, float]] = []
    for child in CacheLayout(cache_dir).runs():  # the directories holding a report.json
        report = child / REPORT_FILES["json"]
        match = _RUN_DIR_RE.match(child.name)
        started, name = None, child.name
        if match:
            try:
                started = datetime.strptime(match.group(1), "%Y%m%d-%H%M%S")
                name = match.group(2) or child.name
            except ValueError:
                started = None
        found.append((child, name, started, report.stat().st_mtime))
    found.sort(key=lambda r: (r[2].timestamp() if r[2] else r[3], r[3], r[0].name), reverse=True)
    labels = [
        f"{started.strftime(TIME_FORMAT) if started else local_time(mtime)} · {name}"
        for _, name, started, mtime in found
    ]
    runs = []
    for (path, name, started, mtime), label in zip(found, labels, strict=True):
        if labels.count(label) > 1:
            label = f"{label} ({path.name})"
        runs.append(RunInfo(path, name, started, mtime, label))
    return runs


def local_time(value: str | float | None) -> str:
    """An ISO-8601 string (report.json's ``created``) or epoch seconds as local ``YYYY-mm-dd HH:MM:SS``;
    "unknown time" when missing or unreadable."""
    if value is None or value == "":
        return "unknown time"
    try:
        when = (
            datetime.fromtimestamp(value) if isinstance(value, int | float) else datetime.fromisoformat(value)
        )
    except (TypeError, ValueError, OSError):
        return str(value)
    if when.tzinfo is not None:
        when = when.astimezone()  # to the local zone; naive times are already local
    return when.strftime(TIME_FORMAT)


@dataclass(frozen=True)
class Download:
    """One download button's payload: ``data`` is the exact bytes served as ``file_name``."""

    fmt: str
    file_name: str
    data: bytes
    mime: str


def downloads(result: RankingResult) -> list[Download]:
    """The four report files of ``result``: byte for byte from its run directory when they are there, otherwise
    (an upload, a run missing a file) rendered by the analyzer's own writers."""
    from analyzer.reports import WRITERS

    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", result.name).strip("_") or "ranking"
    out = []
    for fmt, file_name in REPORT_FILES.items():
        path = result.run_dir / file_name if result.run_dir is not None else None
        if path is not None and path.is_file():
            data = path.read_bytes()
        else:
            data = WRITERS[file_name](result).encode("utf-8")
        out.append(Download(fmt, f"{stem}-{file_name}", data, MIME_TYPES[fmt]))
    return out
