"""The one error hierarchy: what a user can cause, each kind carrying the fix, and the exit codes.

Only :class:`AnalyzerError` and its kinds are user errors: the CLI prints ``error: <message>`` and
``fix: <fix>`` on their own lines and exits with :data:`EXIT_USAGE`. Any other exception (``ValueError``
included: the metrics raise it for arrays they cannot score, which the analyzer must have checked before) is an
internal failure, :data:`EXIT_INTERNAL`. So every place where a user's input can make Python or a library raise
converts that error to one of these kinds where the input is checked; the same fault raises the same kind
everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

#: Every candidate was handled (ranked, extracted, probed).
EXIT_OK = 0
#: An internal failure: a bug in the analyzer (or a library it uses), not the user's input.
EXIT_INTERNAL = 1
#: The user's input or environment cannot be used; nothing was produced (the message says what to fix).
EXIT_USAGE = 2
#: The command finished and wrote its output, but some candidates failed (each is listed with its reason).
EXIT_PARTIAL = 3


class AnalyzerError(Exception):
    """A problem with the user's inputs or environment: bad arguments, unreadable data, missing weights.

    ``message`` says what is wrong (naming the input); ``fix`` says what to do about it; ``str()`` gives both.
    """

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(message if not fix else f"{message}\n  fix: {fix}")


class UsageError(AnalyzerError):
    """Command-line arguments that cannot be used together or as given (an empty pattern, a missing action)."""


class ConfigError(UsageError):
    """An option value, from a flag or the ``--config`` file, of the wrong type or out of range."""


class DeviceError(ConfigError):
    """``--device`` names no torch device, or one this machine does not have (CUDA without a GPU)."""


class InputFileError(AnalyzerError):
    """A file the user named cannot be read: missing, a directory, not readable, not UTF-8 text."""


class OutputError(AnalyzerError):
    """A place the user asked for output (``--out``) cannot take it: an existing file, below a file, read-only."""


class DatasetError(AnalyzerError):
    """The dataset cannot be read as given (missing files, corrupt images, mismatched labels, one class)."""


class BackboneError(AnalyzerError):
    """A model spec cannot be loaded (unknown source, missing weights, no network for a hub model)."""


class CacheError(AnalyzerError):
    """The cache cannot be used (not a directory, not writable, an entry that fails its checks)."""


class TruthError(AnalyzerError):
    """A ground-truth file cannot be used as given (missing, unreadable, wrong columns, bad or duplicate rows)."""


class ReportError(AnalyzerError):
    """A report.json cannot be read (missing, not JSON, not a report object, an unknown schema version)."""


class ExecutorError(AnalyzerError):
    """The chosen executor cannot run the work: no Ray cluster at the address, a cluster that does not answer in
    time, other versions there than here, or a node that cannot see the data or cache path."""


class RankingError(AnalyzerError):
    """A ranking cannot be run as asked (unknown metric names, no candidate left, bad options)."""


class SpectrumError(AnalyzerError):
    """The weight spectrum of a model cannot be computed (no weights file, weightwatcher failed or timed out)."""


@dataclass(frozen=True)
class Failure:
    """Why one candidate failed, as plain data an executor can send back from another process.

    ``message`` (one line), ``fix`` (or None) and ``internal``: True when the cause is not a user error (a bug).
    ``dataset``: True when the cause is a :class:`DatasetError`, a fault of the input every candidate would hit
    (``extract`` and ``probe`` stop on it; the ranking lists it like any candidate's failure).
    """

    message: str
    fix: str | None = None
    internal: bool = False
    dataset: bool = False

    @classmethod
    def of(cls, exc: BaseException) -> Failure:
        if isinstance(exc, AnalyzerError):
            return cls(" ".join(exc.message.split()), exc.fix, dataset=isinstance(exc, DatasetError))
        return cls(f"{type(exc).__name__}: {' '.join(str(exc).split())}", None, True)

    def line(self) -> str:
        """The failure on one line, fix included (the report's ``failed[].error``)."""
        return self.message if not self.fix else f"{self.message} (fix: {self.fix})"


def describe(exc: BaseException) -> str:
    """One line for a failed candidate in a list: our message (and fix) for user errors, type and text else."""
    return Failure.of(exc).line()


def every_candidate_failed(failures: Mapping[str, BaseException | Failure]) -> Exception:
    """The error for "no candidate could be used": each candidate's message and fix on their own lines.

    A fix shared by every failure (a bad ``--device`` fails every candidate the same way) is said once, as the
    fix of the whole error; otherwise each failure keeps its own and no generic advice is added. When every
    failure is a user error the result is a :class:`RankingError`; when any is internal, a ``RuntimeError``
    (exit code 1: a bug must not look like bad input).
    """
    causes = {spec: f if isinstance(f, Failure) else Failure.of(f) for spec, f in failures.items()}
    fixes = {f.fix for f in causes.values()}
    common = next(iter(fixes)) if len(fixes) == 1 else None
    lines = [f"every candidate failed ({len(causes)}):"]
    for spec, failure in causes.items():
        lines.append(f"  {spec}: {'internal error: ' if failure.internal else ''}{failure.message}")
        if failure.fix and common is None:
            lines.append(f"    fix: {failure.fix}")
    message = "\n".join(lines)
    if any(f.internal for f in causes.values()):
        return RuntimeError(message)
    return RankingError(message, common)
