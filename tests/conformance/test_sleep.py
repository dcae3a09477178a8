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
@pytest.mark.timeout(60)
def test_sleeping_tasks_overlap(make_executor: Any) -> None:
    ex = make_executor(size=5)
    t0 = time.monotonic()
    futures = [ex.submit(tasks.sleep_return, 0.5, i) for i in range(5)]
    assert [f.result(timeout=30) for f in futures] == list(range(5))
    # five half-second sleeps side by side, not one after another (generous bound)
    assert time.monotonic() - t0 < 2.4
