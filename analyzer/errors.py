"""Errors a user can cause, each carrying the fix. The CLI turns them into a message and exit code 2."""

from __future__ import annotations


class AnalyzerError(Exception):
    """A problem with the user's inputs or environment: bad arguments, unreadable data, missing weights.

    ``fix`` says what to do about it; ``str()`` gives both.
    """

    def __init__(self, message: str, fix: str | None = None) -> None:
        self.message = message
        self.fix = fix
        super().__init__(message if not fix else f"{message}\n  fix: {fix}")


class DatasetError(AnalyzerError):
    """The dataset cannot be read as given (missing files, corrupt images, mismatched labels)."""


class BackboneError(AnalyzerError):
    """A model spec cannot be loaded (unknown source, missing weights, no network for a hub model)."""


class CacheError(AnalyzerError):
    """The feature store cannot be used (unwritable directory, an entry that fails its checks)."""
