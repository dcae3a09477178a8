"""SPEC 3: ``unifex.Future`` has the ``concurrent.futures.Future`` interface."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest

import unifex
from unifex.testing import tasks


def test_states_of_a_finished_future(ex: Any) -> None:
    fut = ex.submit(tasks.square, 5)
    assert fut.result(timeout=30) == 25
    assert fut.done() and not fut.running() and not fut.cancelled()
    assert fut.exception() is None
    assert fut.cancel() is False
    assert "finished" in repr(fut)


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_result_timeout_raises_plain_timeout_error(make_executor: Any) -> None:
    ex = make_executor(size=1)
    release = ex.Event()
    try:
        fut = ex.submit(tasks.wait_event_then, release, 1)
        with pytest.raises(TimeoutError) as info:
            fut.result(timeout=0.1)
        assert not isinstance(info.value, unifex.TaskTimeoutError)
        with pytest.raises(TimeoutError):
            fut.exception(timeout=0.05)
        assert not fut.done()
        release.set()
        assert fut.result(timeout=30) == 1
    finally:
        release.set()


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_cancel_a_queued_task(make_executor: Any) -> None:
    ex = make_executor(size=1)
    started, release = ex.Event(), ex.Event()
    try:
        first = ex.submit(tasks.signal_and_wait, started, release, "first")
        second = ex.submit(tasks.square, 3)
        assert started.wait(30)
        assert first.cancel() is False
        assert second.cancel() is True
        assert second.cancelled() and second.done()
        with pytest.raises(concurrent.futures.CancelledError):
            second.result(timeout=1)
        release.set()
        assert first.result(timeout=30) == "first"
        assert ex.submit(tasks.square, 4).result(timeout=30) == 16
    finally:
        release.set()


def test_exception_returns_the_task_error(ex: Any) -> None:
    exc = ex.submit(tasks.fail, "x").exception(timeout=30)
    assert isinstance(exc, tasks.TaskError)


def test_a_standalone_future_can_be_settled() -> None:
    fut: unifex.Future[int] = unifex.Future()
    assert fut.set_running_or_notify_cancel() is True
    assert fut.running()
    fut.set_result(3)
    assert fut.result() == 3
    with pytest.raises(concurrent.futures.InvalidStateError):
        fut.set_result(4)
