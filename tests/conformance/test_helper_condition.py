"""SPEC 4: ``Condition(lock=None)``: wait, wait_for, notify(n), notify_all."""

from __future__ import annotations

from typing import Any

import pytest

from unifex.testing import tasks, wait_until


def test_condition_from_the_caller(ex: Any) -> None:
    cond = ex.Condition()
    with cond:
        assert cond.wait(0.05) is False
        assert cond.wait_for(lambda: True, 0.05) is True
        cond.notify()
        cond.notify_all()
    with pytest.raises(RuntimeError):
        cond.notify()


def test_condition_with_an_explicit_lock(ex: Any) -> None:
    lock = ex.Lock()
    cond = ex.Condition(lock)
    with cond:
        assert cond.wait(0.01) is False
    assert lock.acquire(blocking=False)
    lock.release()


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_notify_n_wakes_n_waiters(make_executor: Any) -> None:
    ex = make_executor(size=4)
    cond = ex.Condition()
    shared = ex.dict(go=0, waiting=0, woken=0)
    futures = [ex.submit(tasks.condition_turn, cond, shared) for _ in range(3)]
    try:
        assert wait_until(lambda: shared["waiting"] == 3, timeout=30)
        with cond:
            shared["go"] = 2
            cond.notify(2)
        assert wait_until(lambda: sum(f.done() for f in futures) == 2, timeout=30)
        assert shared["woken"] == 2
        with cond:
            shared["go"] = 3
            cond.notify_all()
        assert [f.result(timeout=30) for f in futures] == [True, True, True]
    finally:
        with cond:
            shared["go"] = 99
            cond.notify_all()


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(120)
def test_no_notify_is_lost_to_a_later_waiter(make_executor: Any) -> None:
    """Tasks arrive one by one and notify the caller, then wait themselves: a
    wake-up meant for the caller must not go to a task that started waiting
    after the notify (the caller would then wait for a notify that never comes)."""
    ex = make_executor(size=4)
    for _ in range(5):
        cond, state = ex.Condition(), ex.dict(waiting=0, go=False)
        futures = [ex.submit(tasks.condition_arrive, cond, state) for _ in range(4)]
        with cond:
            while state["waiting"] < 4:
                woken = cond.wait(timeout=5)
                assert woken or state["waiting"] < 4, "a notify_all() for the caller was lost"
            state["go"] = True
            cond.notify_all()
        assert [f.result(timeout=30) for f in futures] == [True] * 4
