"""The new-ranking form: what it offers, how it reports progress, and the run it writes.

The form runs :class:`analyzer.ranking.Ranker` exactly as the ``rank`` command does, with the ranking's own
default metrics (it asks the ranking, it does not copy the list), and writes the run where ``rank`` would.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analyzer.errors import AnalyzerError
from analyzer.naming import short_names


def parse_candidates(text: str) -> list[str]:
    """Model specs from the form: separated by commas or new lines, blanks and ``#`` comments dropped, duplicates
    removed. Raises AnalyzerError when none is given."""
    specs: dict[str, None] = {}
    for part in re.split(r"[,\n]", text or ""):
        part = part.strip()
        if part and not part.startswith("#"):
            specs.setdefault(part, None)
    if not specs:
        raise AnalyzerError(
            "no candidate models given",
            "enter one model spec per line or comma-separated, e.g. timm:resnet18 or torchscript:path/model.pt",
        )
    return list(specs)


def default_metrics() -> list[str]:
    """The metrics ``rank`` uses when none are named (the ranking's defaults: the aggregate and the data-free
    ones), so a run started here has the same columns, weight spectrum included."""
    from analyzer.ranking import default_metric_names

    return default_metric_names()


def available_metrics() -> list[str]:
    """Every metric name the ranking accepts (registered scorers and data-free ones)."""
    from analyzer.ranking import valid_metric_names

    return list(valid_metric_names())


@dataclass(frozen=True)
class Progress:
    """One candidate's progress for its bar: ``name`` (short), ``fraction`` in [0, 1], ``text``, ``failed``."""

    model: str
    name: str
    fraction: float
    text: str
    failed: bool = False


class CandidateProgress:
    """Turns the Ranker's :class:`analyzer.ranking.ProgressEvent` stream into one :class:`Progress` per candidate.

    Uses the event's ``done`` / ``total`` when the ranking provides them. Without them it only counts the units
    each candidate has started and shows ``n / (n + 1)``: honest that the total is unknown, never re-deriving
    the Ranker's plan. A failure is final for that candidate.
    """

    def __init__(self, specs: Sequence[str], callback: Callable[[Progress], None] | None) -> None:
        self.names = short_names(list(specs))
        self.started = dict.fromkeys(self.names, 0)
        self.failed: set[str] = set()
        self.callback = callback
        for spec in self.names:
            self._emit(Progress(spec, self.names[spec], 0.0, "waiting"))

    def _emit(self, progress: Progress) -> None:
        if self.callback is not None:
            self.callback(progress)

    def event(self, event: Any) -> None:  # event: analyzer.ranking.ProgressEvent
        model = event.model
        if model not in self.names or model in self.failed:
            return
        if event.stage == "failed":
            # the error itself is shown by finish(), from the result (the event's message is a log line)
            self.failed.add(model)
            self._emit(Progress(model, self.names[model], 1.0, "failed", failed=True))
            return
        done, total = getattr(event, "done", None), getattr(event, "total", None)
        self.started[model] += 1
        fraction = (
            done / total if done is not None and total else self.started[model] / (self.started[model] + 1)
        )
        self._emit(Progress(model, self.names[model], fraction, event.stage))

    def finish(self, result: Any) -> None:
        """Complete every bar from the result: done, or failed with the error the result records."""
        failed = {f["model"]: f.get("error", "") for f in result.failed}
        for spec, name in self.names.items():
            if spec in failed:
                self._emit(Progress(spec, name, 1.0, f"failed: {failed[spec]}", failed=True))
            else:
                self._emit(Progress(spec, name, 1.0, "done"))


def start_ranking(
    cache_dir: str | os.PathLike[str],
    *,
    data: str,
    candidates: str | Sequence[str],
    metrics: Sequence[str] | None = None,
    name: str = "dashboard",
    max_per_class: int | None = None,
    n_bootstrap: int = 100,
    seed: int = 0,
    progress: Callable[[Progress], None] | None = None,
) -> Path:
    """Rank ``candidates`` (specs, or the form's text) on ``data`` with the Ranker, save the run under
    ``<cache>/runs/<timestamp>-<name>/`` (all four report files) and return that directory.

    ``metrics``: None or empty for :func:`default_metrics`. Bad input raises AnalyzerError with the fix.
    """
    specs = parse_candidates(candidates) if isinstance(candidates, str) else list(candidates)
    if not specs:
        raise AnalyzerError("no candidate models given", "pass at least one model spec")
    if not (data or "").strip():
        raise AnalyzerError(
            "no dataset given",
            "enter an image folder, a .csv/.jsonl/.npz file, a save_to_disk directory, or sklearn:digits",
        )
    from analyzer.paths import CacheLayout
    from analyzer.ranking import Ranker

    tracker = CandidateProgress(specs, progress)
    ranker = Ranker(
        data.strip(),
        cache_dir=cache_dir,
        max_per_class=max_per_class,
        seed=seed,
        progress=False,
        on_progress=tracker.event,
    )
    result = ranker.run(specs, metrics=list(metrics) if metrics else None, n_bootstrap=n_bootstrap, name=name)
    out = CacheLayout(ranker.cache_dir).new_run_dir(name)
    result.save(out)
    tracker.finish(result)
    return out
