"""SPEC 2: ``terminate()`` cancels queued tasks, stops running ones where the
model allows it (``kill_running``) and fails their futures with
``TerminatedError``; threads cannot be interrupted, so their futures fail at
once and the thread ends when the function returns."""

from __future__ import annotations

import concurrent.futures
import time
from typing import Any

import pytest

import unifex
from unifex.testing import tasks

# a start method can change this clause: run it under each (see unifex.testing)
pytestmark = pytest.mark.worker_start


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(90)
def test_terminate_cancels_queued_and_fails_running(make_executor: Any) -> None:
    ex = make_executor(size=1)
    started, release = ex.Event(), ex.Event()
    try:
        running = ex.submit(tasks.signal_and_wait, started, release, "ran")
        queued = [ex.submit(tasks.square, i) for i in range(3)]
        assert started.wait(30)
        t0 = time.monotonic()
        ex.terminate()
        assert time.monotonic() - t0 < 10
        with pytest.raises(unifex.TerminatedError):
            running.result(timeout=10)
        for fut in queued:
            assert fut.cancelled() or isinstance(fut.exception(timeout=10), unifex.TerminatedError)
            with pytest.raises((concurrent.futures.CancelledError, unifex.TerminatedError)):
                fut.result(timeout=10)
    finally:
        release.set()


@pytest.mark.requires("concurrent", "kill_running")
@pytest.mark.timeout(90)
def test_terminate_stops_a_running_task(make_executor: Any, tmp_path: Any) -> None:
    ex = make_executor(size=2)
    started = ex.Event()
    marker = tmp_path / "finished"
    fut = ex.submit(tasks.sleep_then_touch, started, 0.5, str(marker))
    assert started.wait(30)
    ex.terminate()
    with pytest.raises(unifex.TerminatedError):
        fut.result(timeout=10)
    # a stopped task never reaches the line after its sleep
    time.sleep(1.5)
    assert not marker.exists()


def test_terminate_is_idempotent_and_refuses_work(ex: Any) -> None:
    assert ex.submit(tasks.square, 3).result(timeout=30) == 9
    ex.terminate()
    ex.terminate()
    with pytest.raises(unifex.ExecutorClosedError, match="terminated"):
        ex.submit(tasks.square, 1)
    ex.close()


def test_terminate_keeps_finished_results(ex: Any) -> None:
    futures = [ex.submit(tasks.square, i) for i in range(5)]
    results = [f.result(timeout=30) for f in futures]
    ex.terminate()
    assert [f.result() for f in futures] == results


@pytest.mark.requires("threads")
@pytest.mark.timeout(60)
def test_thread_terminate_fails_at_once_and_thread_finishes_later(make_executor: Any) -> None:
    ex = make_executor(size=1)
    started, release = ex.Event(), ex.Event()
    fut = ex.submit(tasks.signal_and_wait, started, release, "late")
    assert started.wait(30)
    ex.terminate()
    with pytest.raises(unifex.TerminatedError):
        fut.result(timeout=1)
    release.set()  # the thread returns; the leak check then sees it gone
