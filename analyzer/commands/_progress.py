"""Progress bars for the commands: one tqdm bar per stage of a ranking, on stderr, with short candidate names.

The Ranker reports each finished unit of work through ``on_progress(ProgressEvent)`` (a stage such as ``features``, a
metric name, ``weight spectrum`` or ``bootstrap <first>-<last>``, and the candidate's spec, with the stage's
``done``/``total``). :class:`StageBars` turns that stream into one bar per stage that counts candidates and shows
the last one by its short name, instead of a line per unit of work with the full spec. Units served from the cache
are not announced, so a bar may jump to its end when its stage finishes; a fully cached run shows no bars at all.
"""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from analyzer.naming import short_names

if TYPE_CHECKING:
    from analyzer.ranking.progress import ProgressEvent


class StageBars:
    """``on_progress`` callback drawing one bar per stage; call :meth:`close` when the run ends.

    ``candidates``: the model specs of the run (their short names label the bars; the count is a stage's total
    when the event carries no ``total``). ``enabled=False`` draws nothing but still reports failures.
    """

    def __init__(
        self, candidates: Sequence[str], *, enabled: bool = True, file: TextIO | None = None
    ) -> None:
        self.names = short_names(list(candidates))
        self.count = len(self.names)
        self.enabled = enabled
        self.file = file or sys.stderr
        self._bar: Any = None
        self._stage: str | None = None
        self._seen = 0
        # Where no bar is drawn (stderr not a terminal: a log, CI, a job scheduler) each stage still says, once,
        # that it ended and which node ran how many of its units.
        self.lines = enabled and not self.file.isatty()
        self._nodes: dict[str, Counter[str]] = {}

    def event(self, event: ProgressEvent) -> None:
        """Handle one ``ProgressEvent``: a bar per ``label``, counting ``done`` of ``total`` (0 when unknown); a
        failure (``error``) is written as a line."""
        name = self.names.get(event.model, event.model)
        if event.error is not None:
            self._write(f"failed: {name}: {event.error}")
            return
        if not self.enabled:
            return
        if self.lines:
            self._line(event)
            return
        if event.label != self._stage:
            self._finish()
            from tqdm.auto import tqdm

            total = event.total or self.count
            self._bar = tqdm(
                total=total,
                desc=f"{event.label:<16s}",
                unit="model",
                file=self.file,
                leave=True,
                ncols=80,
                disable=None,  # no bars when stderr is not a terminal (logs, CI): no walls of carriage returns
            )
            self._stage, self._seen = event.label, 0
        self._seen += 1
        # events come as units finish; done counts this one and cached ones
        self._bar.n = min(event.done or self._seen, self._bar.total)
        self._bar.set_postfix_str(name[:24], refresh=True)

    def _line(self, event: ProgressEvent) -> None:
        nodes = self._nodes.setdefault(event.label, Counter())
        nodes[event.node or "local"] += 1
        if event.total and event.done >= event.total:
            where = ", ".join(f"{count} on {node}" for node, count in sorted(nodes.items()))
            print(f"{event.label}: {event.done}/{event.total} done ({where})", file=self.file, flush=True)

    def _write(self, line: str) -> None:
        if self._bar is not None:
            self._bar.write(line, file=self.file)
        else:
            print(line, file=self.file, flush=True)

    def _finish(self) -> None:
        if self._bar is not None:
            self._bar.n = self._bar.total  # the stage is over: its remaining units were cached
            self._bar.set_postfix_str("", refresh=False)
            self._bar.close()
        self._bar, self._stage = None, None

    def close(self) -> None:
        """End the last bar (call once the ranking returns)."""
        self._finish()
