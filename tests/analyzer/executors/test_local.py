"""The in-process executor: units one after the other, units with a fixed thread count several at once."""

from __future__ import annotations

import math
import threading

from threadpoolctl import threadpool_info

from analyzer.executors import InProcessExecutor, Task

MEETING = threading.Barrier(2, timeout=20)


def meet(x: int) -> int:
    """Returns x once another unit has reached the same point: two of these finish only if they run at once."""
    MEETING.wait()
    return x


def blas_threads() -> int:
    import numpy as np  # noqa: F401 - its BLAS must be loaded to be counted

    return max(int(p["num_threads"]) for p in threadpool_info() if p["user_api"] == "blas")


def test_units_with_a_fixed_thread_count_run_at_once_and_report_in_task_order_from_the_callers_thread() -> (
    None
):
    MEETING.reset()
    calls: list[tuple[int, int, str]] = []
    tasks = [Task("bootstrap", f"m{i}", meet, (i,), threads=1) for i in range(2)]
    outcomes = InProcessExecutor(max_workers=2).run(
        tasks, on_done=lambda o, done, total: calls.append((o.value, done, threading.current_thread().name))
    )
    assert [o.value for o in outcomes] == [0, 1] and all(o.ok for o in outcomes)
    main = threading.current_thread().name
    assert calls == [(0, 1, main), (1, 2, main)]


def test_a_unit_with_a_fixed_thread_count_computes_with_that_many_threads_and_the_rest_with_the_processes() -> (
    None
):
    before = blas_threads()
    pinned, free = (
        InProcessExecutor(max_workers=2).run([Task("bootstrap", "m", blas_threads, threads=1)])[0],
        None,
    )
    free = InProcessExecutor().run([Task("scores", "m", blas_threads)])[0]
    assert pinned.value == 1 and free.value == before
    assert blas_threads() == before  # the limit ends with the stage


def test_units_without_a_thread_count_run_one_after_the_other_and_a_failure_is_data() -> None:
    tasks = [Task("scores", "bad", math.sqrt, (-1.0,)), Task("scores", "good", math.sqrt, (4.0,))]
    bad, good = InProcessExecutor(max_workers=2).run(tasks)
    assert not bad.ok and bad.error_type == "ValueError" and good.value == 2.0
