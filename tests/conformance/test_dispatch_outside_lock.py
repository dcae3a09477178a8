"""SPEC 2: user code never runs under the executor's internal lock. A task
handed over (a whole ``serial`` task, the pickling of a task's arguments under
``process`` and ``dask``) does not keep other threads from submitting or
closing, and ``close()`` still strands no task submitted concurrently."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from unifex.testing import tasks


@pytest.mark.kinds("thread", "pool", "serial")
@pytest.mark.timeout(120)
def test_another_thread_submits_and_closes_while_a_task_runs(make_executor: Any) -> None:
    ex = make_executor(size=2)
    outcome: dict[str, Any] = {}

    def other_thread() -> None:
        try:
            outcome["result"] = ex.submit(tasks.add, 1, 2).result(timeout=30)
            ex.close(wait=False)
            outcome["closed"] = True
        except BaseException as exc:  # reported below
            outcome["error"] = exc

    def task() -> bool:
        thread = threading.Thread(target=other_thread)
        thread.start()
        thread.join(30)
        return not thread.is_alive()

    assert ex.submit(task).result(timeout=60) is True, "the other thread was kept waiting by the running task"
    assert outcome == {"result": 3, "closed": True}


class SubmitsFromAnotherThreadWhenPickled:
    """An argument whose pickling waits for another thread's ``submit``."""

    def __init__(self, ex: Any) -> None:
        self.ex = ex
        self.results: list[Any] = []

    def __reduce__(self) -> tuple[Any, ...]:
        def other() -> None:
            self.results.append(self.ex.submit(tasks.square, 3).result(timeout=60))

        thread = threading.Thread(target=other)
        thread.start()
        thread.join(90)
        return (int, (7,))


@pytest.mark.kinds("process", "dask")
@pytest.mark.timeout(180)
def test_pickling_an_argument_does_not_hold_the_executor(make_executor: Any) -> None:
    ex = make_executor(size=2)
    arg = SubmitsFromAnotherThreadWhenPickled(ex)
    fut = ex.submit(tasks.identity, arg)
    assert arg.results == [9], "the other thread's submit waited for the pickling to end"
    assert fut.result(timeout=60) == 7


@pytest.mark.timeout(120)
def test_close_strands_no_task_submitted_concurrently(make_executor: Any) -> None:
    ex = make_executor(size=2)
    futures: list[Any] = []
    started = threading.Event()

    def submitter() -> None:
        started.set()
        try:
            while True:
                futures.append(ex.submit(tasks.add, len(futures), 1))
        except RuntimeError:  # ExecutorClosedError: closed meanwhile
            pass

    thread = threading.Thread(target=submitter)
    thread.start()
    assert started.wait(30)
    while not futures:
        tasks.sleep_return(0.001, None)
    ex.close(wait=True)
    thread.join(60)
    assert not thread.is_alive()
    # every accepted task ran: none was handed over after the workers were told to stop
    assert all(f.done() for f in futures)
    assert [f.result(timeout=0) for f in futures] == [i + 1 for i in range(len(futures))]
