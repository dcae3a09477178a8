"""SPEC 4: ``Semaphore(n)`` and ``BoundedSemaphore(n)``."""

from __future__ import annotations

from typing import Any

import pytest

from unifex.testing import tasks


@pytest.mark.parametrize("factory", ["Semaphore", "BoundedSemaphore"])
def test_counting_from_the_caller(ex: Any, factory: str) -> None:
    sem = getattr(ex, factory)(2)
    assert sem.acquire()
    assert sem.acquire(blocking=False)
    assert sem.acquire(blocking=False) is False
    assert sem.acquire(timeout=0.05) is False
    sem.release()
    sem.release()
    with sem:
        pass


def test_bounded_semaphore_refuses_over_release(ex: Any) -> None:
    sem = ex.BoundedSemaphore(1)
    with pytest.raises(ValueError):
        sem.release()
    sem.acquire()
    sem.release()
    with pytest.raises(ValueError):
        sem.release()


def test_default_value_is_one(ex: Any) -> None:
    sem = ex.Semaphore()
    assert sem.acquire(blocking=False)
    assert sem.acquire(blocking=False) is False
    sem.release()


@pytest.mark.requires("concurrent")
@pytest.mark.parametrize("factory", ["Semaphore", "BoundedSemaphore"])
@pytest.mark.timeout(60)
def test_at_most_n_holders_at_a_time(make_executor: Any, factory: str) -> None:
    ex = make_executor(size=6)
    sem = getattr(ex, factory)(2)
    counter, lock = ex.dict(now=0, max=0), ex.Lock()
    futures = [ex.submit(tasks.semaphore_probe, sem, counter, lock, 0.05) for _ in range(6)]
    assert sum(f.result(timeout=60) for f in futures) == 6
    assert counter["max"] == 2
    assert counter["now"] == 0
