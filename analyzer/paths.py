"""Where the cache lives (``--cache-dir``, else ``$ANALYZER_CACHE_DIR``, else ``data_cache/`` in the project), and how
files in it are written (atomically)."""

from __future__ import annotations

import datetime
import os
import secrets
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CACHE_DIR = PROJECT_ROOT / "data_cache"
CACHE_ENV = "ANALYZER_CACHE_DIR"


def resolve_cache_dir(cache_dir: str | os.PathLike[str] | None = None, *, create: bool = True) -> Path:
    """The cache directory every command and the dashboard use.

    ``create=True`` makes it (and checks it is writable); ``create=False`` only inspects (``cache ls`` on a
    directory that does not exist creates nothing). A path that is a file, lies below a file, or cannot be
    written raises :class:`analyzer.errors.CacheError` naming it, with the fix.
    """
    from analyzer.errors import CacheError

    chosen = cache_dir or os.environ.get(CACHE_ENV) or DEFAULT_CACHE_DIR
    path = Path(chosen).expanduser().resolve()
    origin = "--cache-dir" if cache_dir else (f"${CACHE_ENV}" if os.environ.get(CACHE_ENV) else "the default")
    fix = f"pass a writable directory with --cache-dir DIR (or set ${CACHE_ENV})"
    if path.exists() and not path.is_dir():
        raise CacheError(f"the cache dir {path} ({origin}) is a file, not a directory", fix)
    if not create:
        parent = path
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise CacheError(f"the cache dir {path} ({origin}) lies below the file {parent}", fix)
        return path
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise CacheError(
            f"the cache dir {path} ({origin}) lies below a file, so it cannot be created", fix
        ) from None
    except OSError as exc:
        raise CacheError(
            f"cannot create the cache dir {path} ({origin}): {exc.strerror or exc}", fix
        ) from exc
    if not os.access(path, os.W_OK | os.X_OK):
        raise CacheError(f"the cache dir {path} ({origin}) is not writable", fix)
    return path


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file in the same directory and ``os.replace``.

    A reader (the dashboard) never sees a half-written report, and an interrupted write leaves the old file. The
    file gets mode 0o666 less the process umask, as ``open()`` gives (reports are meant to be shared: dashboard,
    other users): the temporary file is created with that mode by ``os.open``, so the umask is never changed
    (``os.umask`` is process-wide: setting it to 0 for a moment, as ``mkstemp`` + chmod needs to read it, would
    let another thread create world-writable files in that window).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp, fd = _create_temp(path)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _create_temp(path: Path) -> tuple[Path, int]:
    """A new temporary file beside ``path`` (unique name, ``O_EXCL``), mode 0o666 less the umask; (its path, fd)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    while True:
        tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
        try:
            return tmp, os.open(tmp, flags, 0o666)
        except FileExistsError:  # 64 random bits taken: draw again
            continue


#: Characters a run name keeps in its directory name; every other character becomes "-".
_SAFE = frozenset("-_.")


class CacheLayout:
    """The cache's folders, named once. Every module that reads or writes the cache asks this class where.

    ``<root>/features`` the feature store, ``scores`` per-entry score records, ``spectrum`` weight spectra,
    ``checks`` remembered image checks of datasets, ``probe`` linear-probe results, ``runs`` saved rankings
    (one directory each), ``zoo`` the offline zoo's models, ``figures`` report.html's rendered plots, ``cost`` measured costs per (weights, input, device, batch size). Nothing is created until it is written.
    """

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    @property
    def features(self) -> Path:
        return self.root / "features"

    @property
    def scores(self) -> Path:
        return self.root / "scores"

    @property
    def spectrum(self) -> Path:
        return self.root / "spectrum"

    @property
    def checks(self) -> Path:
        return self.root / "checks"

    @property
    def probe(self) -> Path:
        return self.root / "probe"

    @property
    def runs_dir(self) -> Path:
        return self.root / "runs"

    @property
    def zoo(self) -> Path:
        return self.root / "zoo"

    @property
    def figures(self) -> Path:
        return self.root / "figures"

    @property
    def cost(self) -> Path:
        return self.root / "cost"

    def new_run_dir(self, name: str, *, now: datetime.datetime | None = None) -> Path:
        """Create and return a new, empty ``runs/<YYYYmmdd-HHMMSS>-<name>[-<n>]/`` (name made filesystem-safe).

        The directory is created with ``exist_ok=False``: two runs started in the same second (two processes,
        two dashboard users) get different directories (``-2``, ``-3``, ... added), never one shared one.
        """
        safe = "".join(c if c.isalnum() or c in _SAFE else "-" for c in name).strip("-.")[:60] or "run"
        stamp = (now or datetime.datetime.now()).strftime("%Y%m%d-%H%M%S")
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        base = self.runs_dir / f"{stamp}-{safe}"
        candidate, n = base, 1
        while True:
            try:
                candidate.mkdir(exist_ok=False)
                return candidate
            except FileExistsError:
                n += 1
                candidate = base.with_name(f"{base.name}-{n}")

    def runs(self) -> list[Path]:
        """Saved run directories (those holding a report.json), newest name first."""
        if not self.runs_dir.is_dir():
            return []
        found = [p for p in self.runs_dir.iterdir() if p.is_dir() and (p / "report.json").is_file()]
        return sorted(found, key=lambda p: p.name, reverse=True)
