"""SPEC 4: ``Lock()``: the ``threading.Lock`` interface, atomic across every
worker of the executor."""

from __future__ import annotations

from typing import Any

import pytest

from unifex.testing import tasks

# a start method can change this clause: run it under each (see unifex.testing)
pytestmark = pytest.mark.worker_start


def test_lock_protects_a_read_modify_write(make_executor: Any) -> None:
    ex = make_executor(size=4)
    lock, shared = ex.Lock(), ex.dict(n=0)
    futures = [ex.submit(tasks.incr_locked, lock, shared, "n", 25) for _ in range(4)]
    assert [f.result(timeout=60) for f in futures] == [25] * 4
    assert shared["n"] == 100


def test_acquire_release_from_the_caller(ex: Any) -> None:
    lock = ex.Lock()
    assert lock.acquire() is True
    assert lock.acquire(blocking=False) is False
    assert lock.acquire(timeout=0.05) is False
    lock.release()
    with lock:
        assert lock.acquire(False) is False
    assert lock.acquire(False) is True
    lock.release()


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_a_task_waits_for_the_callers_lock(make_executor: Any) -> None:
    ex = make_executor(size=2)
    lock, shared = ex.Lock(), ex.dict(n=0)
    lock.acquire()
    fut = ex.submit(tasks.incr_locked, lock, shared, "n", 1)
    with pytest.raises(TimeoutError):
        fut.result(timeout=0.2)
    lock.release()
    assert fut.result(timeout=30) == 1
    assert shared["n"] == 1
