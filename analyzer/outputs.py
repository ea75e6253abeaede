"""Output files: the analyzer never overwrites a file it did not write (unless ``--force``), and writes a set of
files (a run's four reports) all or nothing.

What the analyzer wrote is recorded beside it: ``.analyzer-written.json`` in the output's folder maps each file
name to the sha256 of the bytes written. A file counts as the analyzer's own only while it still hashes to that
value; a hand-written truth CSV, a report.json edited by hand or any other file in the way is refused with the
``--force`` fix, before any work.

All or nothing: every file of a set is first written to a temporary file in the target folder (and fsynced);
only when all are written are they renamed into place, one ``os.replace`` each (a rename needs no space, so a
full disk fails before any file is replaced). A failure removes the temporaries and leaves the old set as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path

from analyzer.errors import OutputError

#: the record of what the analyzer wrote in a folder: {file name: sha256 of its bytes}
LEDGER = ".analyzer-written.json"


def _sha256(data: bytes) -> str:
    import hashlib

    return hashlib.sha256(data).hexdigest()


def _ledger(folder: Path) -> dict[str, str]:
    try:
        data = json.loads((folder / LEDGER).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def written_by_analyzer(path: Path) -> bool:
    """True when ``path`` is a file the analyzer wrote and nobody changed since."""
    recorded = _ledger(path.parent).get(path.name)
    if recorded is None:
        return False
    try:
        return _sha256(path.read_bytes()) == recorded
    except OSError:
        return False


def check_overwrite(paths: Iterable[str | os.PathLike[str]], *, flag: str, force: bool) -> None:
    """Refuse (:class:`OutputError`) when one of ``paths`` exists and is not the analyzer's own unchanged output."""
    if force:
        return
    foreign = [Path(p) for p in paths if Path(p).is_file() and not written_by_analyzer(Path(p))]
    if foreign:
        names = ", ".join(str(p) for p in foreign)
        raise OutputError(
            f"{flag} would overwrite {names}, which the analyzer did not write (or which changed since it did)",
            f"pass --force to replace {'it' if len(foreign) == 1 else 'them'}, or give {flag} another path",
        )


def check_not_empty(value: str | os.PathLike[str] | None, *, flag: str) -> None:
    """``--out ""`` is refused: it used to fall back to the default place without a word."""
    if value is not None and not str(value).strip():
        raise OutputError(f"{flag} is empty", f"give {flag} a path, or leave {flag} out for the default")


def _write_temp(out: Path, name: str, text: str, temps: dict[str, str]) -> str:
    """``text`` in a new temporary file beside ``out/name``, fsynced, with the umask's permissions (mkstemp makes
    0600; outputs are meant to be shared); its path is in ``temps`` before anything is written, for the cleanup."""
    fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=out)
    temps[f"{name} (being written)"] = tmp
    with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    del temps[f"{name} (being written)"]
    return tmp


def write_all(
    folder: str | os.PathLike[str], files: Mapping[str, str], *, flag: str = "--out"
) -> dict[str, Path]:
    """Write ``files`` ({name: text}) into ``folder`` all or nothing, and record them as the analyzer's own.

    Raises :class:`OutputError` (naming the folder, the OS's reason and the fix) when any cannot be written; then
    no file of the set was replaced.
    """
    out = Path(folder)
    temps: dict[str, str] = {}
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            temps[name] = _write_temp(out, name, text, temps)
        ledger = _ledger(out)
        ledger.update({name: _sha256(text.encode("utf-8")) for name, text in files.items()})
        temps[LEDGER] = _write_temp(out, LEDGER, json.dumps(ledger, indent=1, sort_keys=True), temps)
    except OSError as exc:
        for tmp in temps.values():
            with contextlib.suppress(OSError):
                os.unlink(tmp)
        raise OutputError(
            f"cannot write {', '.join(files)} to {out} ({exc.strerror or exc}); nothing there was replaced",
            f"free space on that disk or give {flag} a folder on another one; finished work is cached, so the "
            "same command resumes",
        ) from exc
    written = {}
    for name in files:
        os.replace(temps[name], out / name)
        written[name] = out / name
    os.replace(temps[LEDGER], out / LEDGER)
    return written
