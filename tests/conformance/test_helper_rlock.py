"""SPEC 4: ``RLock()``: re-entrant, owned by the task that holds it."""

from __future__ import annotations

from typing import Any

import pytest

from unifex.testing import tasks


def test_reentry_inside_a_task(ex: Any) -> None:
    rlock = ex.RLock()
    assert ex.submit(tasks.rlock_reenter, rlock, 5).result(timeout=30) == 5


def test_reentry_from_the_caller(ex: Any) -> None:
    rlock = ex.RLock()
    assert rlock.acquire()
    assert rlock.acquire()
    rlock.release()
    rlock.release()
    with pytest.raises(RuntimeError):
        rlock.release()


def test_rlock_protects_across_tasks(make_executor: Any) -> None:
    ex = make_executor(size=3)
    rlock, shared = ex.RLock(), ex.dict(n=0)
    futures = [ex.submit(tasks.incr_locked, rlock, shared, "n", 10) for _ in range(3)]
    assert [f.result(timeout=60) for f in futures] == [10] * 3
    assert shared["n"] == 30
