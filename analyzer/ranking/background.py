"""A stage run in a thread beside the next one: the weight spectrum beside the bootstrap when the aggregate does not
need it (weightwatcher works in its own process, so the two overlap even on one core's worth of Python).

The stage's progress events are held and handed on from the caller's thread when it collects the result (the
dashboard's callbacks must run in its script thread, and the command's one bar per stage would be closed early by
interleaved stages); its wall time is measured in the thread, so the report's ``spectrum_seconds`` stays that stage's
own time while the run's total shrinks.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from analyzer.ranking.progress import ProgressEvent

T = TypeVar("T")

#: seconds between two hand-overs of held events while waiting for the stage to end
POLL_SECONDS = 0.2


class BackgroundStage(Generic[T]):
    """``run(sink)`` started in a daemon thread now; :meth:`result` waits for it (handing its events to ``emit`` as
    they come) and returns what it returned, or raises what it raised."""

    def __init__(
        self,
        run: Callable[[Callable[[ProgressEvent], None]], T],
        emit: Callable[[ProgressEvent], None],
        name: str,
    ) -> None:
        self._emit = emit
        self._events: queue.SimpleQueue[ProgressEvent] = queue.SimpleQueue()
        self._value: T | None = None
        self._error: BaseException | None = None
        self.seconds = 0.0
        self._thread = threading.Thread(target=self._main, args=(run,), name=name, daemon=True)
        self._thread.start()

    def _main(self, run: Callable[[Callable[[ProgressEvent], None]], T]) -> None:
        t0 = time.perf_counter()
        try:
            self._value = run(self._events.put)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread by result()
            self._error = exc
        finally:
            self.seconds = time.perf_counter() - t0

    def _hand_over(self) -> None:
        while True:
            try:
                event = self._events.get_nowait()
            except queue.Empty:
                return
            self._emit(event)

    def result(self) -> T:
        """The stage's output, once it has ended; its held events are handed to ``emit`` first."""
        while self._thread.is_alive():
            self._hand_over()
            self._thread.join(POLL_SECONDS)
        self._hand_over()
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set whenever no error was raised
