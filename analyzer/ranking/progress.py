"""Progress of a ranking: one :class:`ProgressEvent` per unit of work that ran, with the stage's done/total.

Consumers read the event's fields (``stage``, ``unit``, ``done``, ``total``, ``node``, ``elapsed``, ``error``);
none parses its ``message``, which is only the line the Ranker prints.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from analyzer.executors import TaskOutcome

#: The ranking's stages that report progress, in the order they run.
FEATURES, COST, SCORES, SPECTRUM, BOOTSTRAP = "features", "cost", "scores", "spectrum", "bootstrap"
STAGES = (FEATURES, COST, SCORES, SPECTRUM, BOOTSTRAP)
#: What a view calls each stage.
STAGE_TITLES = {SPECTRUM: "weight spectrum"}


@dataclass(frozen=True)
class ProgressEvent:
    """One unit of a ranking's work finished for one candidate, or that candidate failing.

    Attributes:
        stage: one of :data:`STAGES`.
        model: the candidate's spec.
        message: the line the Ranker prints for it (for a failure: the error too).
        done: units of this stage finished so far, this one included (cached units count as done without an
            event of their own); total: units of this stage in the plan. ``done == total`` ends the stage.
        node: where the unit ran (``"local"`` in process; the node on a cluster).
        unit: what within the stage: the metric (scores), the resamples ``"<first>-<last>"`` (a bootstrap round,
            every aggregate metric), a shard (features); "" when the stage has one unit per candidate.
        elapsed: seconds since the stage (the bootstrap: the round) started.
        error: the candidate failed here, and why (None: the unit finished).
    """

    stage: str
    model: str
    message: str
    done: int = 0
    total: int = 0
    node: str = "local"
    unit: str = ""
    elapsed: float = 0.0
    error: str | None = None

    @property
    def label(self) -> str:
        """What a progress bar of this event is called: ``features``, ``logme``, ``weight spectrum``,
        ``bootstrap 1-60``; one bar per label."""
        if self.stage == SCORES:
            return self.unit
        title = STAGE_TITLES.get(self.stage, self.stage)
        return f"{title} {self.unit}" if self.stage == BOOTSTRAP and self.unit else title


def stage_clock() -> Callable[[], float]:
    """Seconds since this call: each stage's events carry it as ``elapsed``."""
    start = time.perf_counter()
    return lambda: time.perf_counter() - start


#: ``on_progress(event)``, called as each unit of work finishes; cached units are not announced.
ProgressCallback = Callable[[ProgressEvent], None]


class Progress:
    """Prints each event's message to stderr (when ``log``) and hands the event to ``callback``."""

    def __init__(self, *, log: bool = True, callback: ProgressCallback | None = None) -> None:
        self.log = log
        self.callback = callback

    def __call__(self, event: ProgressEvent) -> None:
        if self.log:
            # On a cluster each line also says how far its stage is and which node ran the unit.
            where = (
                f"  [{event.done}/{event.total} on {event.node}]" if event.node not in ("local", "") else ""
            )
            print(event.message + where, file=sys.stderr, flush=True)
        if self.callback is not None:
            self.callback(event)


def per_candidate_events(
    stage: str, title: str, total: int, already: int, emit: Callable[[ProgressEvent], None]
) -> Callable[[TaskOutcome, int, int], None]:
    """The ``on_done`` of a stage with one unit per candidate: one event per finished unit, counting the
    ``already`` recorded units as done, with the unit's node and the seconds since this call."""
    clock = stage_clock()

    def on_done(outcome: TaskOutcome, done: int, _total: int) -> None:
        model = outcome.task.model
        message = f"[rank] {title}: {model}"
        emit(ProgressEvent(stage, model, message, already + done, total, outcome.node, elapsed=clock()))

    return on_done
