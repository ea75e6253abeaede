"""Files and folders the user names: reading them, and checking where output may go, before any work.

Every OS or decoding failure becomes the caller's :class:`analyzer.errors.AnalyzerError` kind, naming the file
and the fix: a missing file, a directory given for a file, no permission, bytes that are not UTF-8 (a Latin-1
CSV, a binary file given as a report). Output places are checked before the expensive work, so a ranking is
never lost at the end because ``--out`` names a file.
"""

from __future__ import annotations

import os
from pathlib import Path

from analyzer.errors import AnalyzerError, InputFileError, OutputError

__all__ = ["check_output_dir", "check_output_file", "read_user_bytes", "read_user_text"]


def read_user_bytes(
    path: str | os.PathLike[str], *, what: str, fix: str, kind: type[AnalyzerError] = InputFileError
) -> bytes:
    """The bytes of the file ``path`` (``what`` names it in messages: "ground-truth file", "report", ...)."""
    path = Path(path).expanduser()
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise kind(f"{what} {path} does not exist", fix) from None
    except IsADirectoryError:
        raise kind(f"{what} {path} is a directory, not a file", fix) from None
    except PermissionError:
        raise kind(f"{what} {path} is not readable (permission denied)", f"make it readable; {fix}") from None
    except OSError as exc:  # NotADirectoryError (a parent is a file), ENAMETOOLONG, I/O errors...
        raise kind(f"cannot read {what} {path} ({exc.strerror or exc})", fix) from exc


def read_user_text(
    path: str | os.PathLike[str], *, what: str, fix: str, kind: type[AnalyzerError] = InputFileError
) -> str:
    """The UTF-8 text of the file ``path`` (a leading BOM dropped); anything else names the byte and the fix."""
    data = read_user_bytes(path, what=what, fix=fix, kind=kind)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise kind(
            f"{what} {Path(path)} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            "it may be binary, or saved in another encoding such as Latin-1",
            f"save it as UTF-8 (e.g. `iconv -f latin1 -t utf-8 IN > OUT`); {fix}",
        ) from None


def _first_existing(path: Path) -> Path:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return probe


def check_output_dir(path: str | os.PathLike[str], *, flag: str) -> Path:
    """``path`` can be (or become) a writable directory: it is one, or does not exist below a writable one.

    Raises :class:`OutputError` naming ``flag`` (e.g. ``--out``) when it is a file, lies below a file, or
    cannot be written; creates nothing.
    """
    path = Path(path).expanduser()
    fix = f"give {flag} a new or existing directory you can write to"
    if path.exists() and not path.is_dir():
        raise OutputError(f"{flag} {path} is an existing file, not a directory", fix)
    base = _first_existing(path)
    if not base.is_dir():
        raise OutputError(f"{flag} {path} lies below the file {base}, so it cannot be a directory", fix)
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path} cannot be written ({base} is not writable)", fix)
    return path


def check_output_file(path: str | os.PathLike[str], *, flag: str) -> Path:
    """``path`` can be written as a file: not a directory, and its folder is (or can become) writable."""
    path = Path(path).expanduser()
    fix = f"give {flag} a file path (e.g. {flag} truth.csv) in a directory you can write to"
    if path.is_dir():
        raise OutputError(f"{flag} {path} is a directory; a file path is needed", fix)
    base = _first_existing(path.parent)
    if not base.is_dir():
        raise OutputError(f"{flag} {path} lies below the file {base}", fix)
    if not os.access(base, os.W_OK | os.X_OK):
        raise OutputError(f"{flag} {path} cannot be written ({base} is not writable)", fix)
    if path.exists() and not os.access(path, os.W_OK):
        raise OutputError(f"{flag} {path} exists and is not writable", fix)
    return path
