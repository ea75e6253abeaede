"""Progress of a ranking: one :class:`ProgressEvent` per unit of work that ran, with the stage's done/total."""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """One unit of a ranking's work finished for one candidate, or that candidate failing.

    Attributes:
        stage: ``"features"``, a metric name, ``"weight spectrum"``, ``"bootstrap <first>-<last>"`` (a round of
            resamples, every aggregate metric), or ``"failed"``.
        model: the candidate's spec.
        message: the line the Ranker prints for it (for a failure: the error).
        done: units of this stage finished so far, this one included (cached units count as done without an
            event of their own); total: units of this stage in the plan. ``done == total`` ends the stage.
        node: where the unit ran (``"local"`` in process; the node on a cluster).
    """

    stage: str
    model: str
    message: str
    done: int = 0
    total: int = 0
    node: str = "local"


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
