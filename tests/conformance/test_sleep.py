"""SPEC 4: ``unifex.sleep`` sleeps the way the current task's model wants."""

from __future__ import annotations

import time
from typing import Any

import pytest

import unifex
from unifex.testing import tasks


def test_sleep_in_tasks_and_caller(ex: Any) -> None:
    fut = ex.submit(tasks.sleep_return, 0.05, "slept")
    t0 = time.monotonic()
    unifex.sleep(0.05)
    assert time.monotonic() - t0 >= 0.04
    assert fut.result(timeout=30) == "slept"


def test_negative_sleep_is_refused() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        unifex.sleep(-1)


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(120)
def test_sleeping_tasks_overlap(make_executor: Any) -> None:
    ex = make_executor(size=5)
    lock, shared = ex.Lock(), ex.dict()
    futures = [ex.submit(tasks.arrive_then_sleep_until_all, lock, shared, 5) for _ in range(5)]
    # each task sleeps until all five are asleep beside it: only side by side can they all see 5
    assert [f.result(timeout=90) for f in futures] == [5] * 5
