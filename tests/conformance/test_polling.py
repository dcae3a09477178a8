"""SPEC 3: every blocking unifex call in the submitting thread lets the
cooperative tasks of that thread run, so a caller that polls shared state
works under every kind."""

from __future__ import annotations

from typing import Any

import pytest

from unifex.testing import tasks, wait_until


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_caller_polls_a_dict_filled_by_tasks(make_executor: Any) -> None:
    ex = make_executor(size=3)
    shared = ex.dict()
    for i in range(3):
        ex.submit(tasks.dict_put, shared, i, True)
    assert wait_until(lambda: len(shared) == 3, timeout=30)


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_caller_polls_future_done(make_executor: Any) -> None:
    ex = make_executor(size=2)
    fut = ex.submit(tasks.sleep_return, 0.02, "ok")
    assert wait_until(fut.done, timeout=30)
    assert fut.result() == "ok"


def test_caller_blocks_on_a_queue_fed_by_a_task(ex: Any) -> None:
    q = ex.Queue()
    ex.submit(tasks.queue_put_range, q, 3)
    assert [q.get(timeout=30) for _ in range(3)] == [0, 1, 2]
