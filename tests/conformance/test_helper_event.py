"""SPEC 4: ``Event()``: the ``threading.Event`` interface."""

from __future__ import annotations

from typing import Any

import pytest

from unifex.testing import tasks

# a start method can change this clause: run it under each (see unifex.testing)
pytestmark = pytest.mark.worker_start


def test_event_interface_from_the_caller(ex: Any) -> None:
    event = ex.Event()
    assert event.is_set() is False
    assert event.wait(0.05) is False
    event.set()
    assert event.is_set() is True
    assert event.wait(1) is True
    assert event.wait() is True
    event.clear()
    assert event.is_set() is False


def test_a_task_sets_the_event(ex: Any) -> None:
    event = ex.Event()
    assert ex.submit(tasks.set_event, event, "set").result(timeout=30) == "set"
    assert event.is_set()


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_tasks_wait_until_the_caller_sets_it(make_executor: Any) -> None:
    ex = make_executor(size=4)
    gate = ex.Event()
    try:
        futures = [ex.submit(tasks.wait_event_then, gate, i) for i in range(4)]
        assert not any(f.done() for f in futures)
        assert gate.wait(0.1) is False
        gate.set()
        assert [f.result(timeout=30) for f in futures] == [0, 1, 2, 3]
    finally:
        gate.set()


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_a_task_waits_for_another_task(make_executor: Any) -> None:
    ex = make_executor(size=2)
    event = ex.Event()
    try:
        waiter = ex.submit(tasks.wait_event_then, event, "woken")
        ex.submit(tasks.sleep_return, 0.05).result(timeout=30)
        ex.submit(tasks.set_event, event)
        assert waiter.result(timeout=30) == "woken"
    finally:
        event.set()
