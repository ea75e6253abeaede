"""The contract every registered executor keeps (analyzer.executors.base.Executor), checked over the registry:
a new executor is added to ``executor_names()`` and runs this suite unchanged."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from analyzer.errors import AnalyzerError
from analyzer.executors import Executor, Task, TaskOutcome, executor_names, get_executor


def square(x: int) -> int:
    return x * x


def fail_on(x: int, bad: int) -> int:
    if x == bad:
        raise ValueError(f"unit {x} is bad")
    return x


@pytest.fixture(params=executor_names())
def any_executor(request: pytest.FixtureRequest) -> Iterator[Executor]:
    """Each registered executor, built through the registry; the Ray one joins the session's local cluster."""
    options = {}
    if request.param == "ray":
        options = {"address": request.getfixturevalue("ray_cluster").address, "warm": False, "quiet": True}
    executor = get_executor(request.param, **options)
    yield executor
    executor.close()


def test_the_registry_lists_local_first_and_refuses_an_unknown_name_with_the_choices() -> None:
    assert executor_names()[0] == "local" and "ray" in executor_names()
    with pytest.raises(AnalyzerError) as info:
        get_executor("spark")
    assert info.value.fix and all(name in info.value.fix for name in executor_names())


def test_outcomes_come_in_task_order_with_each_units_value_and_a_done_call_each(
    any_executor: Executor,
) -> None:
    tasks = [Task("scores", f"m{i}", square, (i,), label=str(i)) for i in range(5)]
    calls: list[tuple[int, int]] = []
    outcomes = any_executor.run(tasks, on_done=lambda outcome, done, total: calls.append((done, total)))
    assert [o.value for o in outcomes] == [0, 1, 4, 9, 16] and all(o.ok for o in outcomes)
    assert [o.task for o in outcomes] == tasks
    assert sorted(calls) == [(i, 5) for i in range(1, 6)]
    assert any_executor.run([]) == []


def test_a_unit_that_raises_is_its_own_failure_and_the_others_run(any_executor: Executor) -> None:
    outcomes = any_executor.run([Task("scores", f"m{i}", fail_on, (i, 1)) for i in range(3)])
    assert [o.ok for o in outcomes] == [True, False, True]
    assert outcomes[1].error_type == "ValueError" and "unit 1 is bad" in (outcomes[1].error or "")


def test_two_threads_may_run_batches_at_once(any_executor: Executor) -> None:
    """The stated thread-safety contract: the Ranker's spectrum thread and its bootstrap share one executor."""
    results: dict[int, list[TaskOutcome]] = {}

    def batch(k: int) -> None:
        results[k] = any_executor.run([Task("scores", f"t{k}", square, (10 * k + i,)) for i in range(3)])

    threads = [threading.Thread(target=batch, args=(k,)) for k in (1, 2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert {k: [o.value for o in v] for k, v in results.items()} == {1: [100, 121, 144], 2: [400, 441, 484]}


def test_start_check_and_close_are_idempotent_and_a_closed_executor_opens_again(
    any_executor: Executor, tmp_path: Path
) -> None:
    any_executor.start([tmp_path])
    any_executor.start([tmp_path])
    any_executor.check_paths([tmp_path])
    described = any_executor.describe()
    assert described["executor"] == any_executor.name and described["nodes"]
    any_executor.close()
    any_executor.close()
    assert [o.value for o in any_executor.run([Task("scores", "m", square, (3,))])] == [9]
