"""SPEC 2: the context manager closes on exit and terminates on
``KeyboardInterrupt`` or ``SystemExit``."""

from __future__ import annotations

import concurrent.futures
from typing import Any

import pytest

import unifex
from unifex.testing import tasks


def test_exit_closes_and_waits(make_executor: Any) -> None:
    with make_executor() as ex:
        futures = [ex.submit(tasks.sleep_return, 0.02, i) for i in range(6)]
    assert all(f.done() for f in futures)
    with pytest.raises(unifex.ExecutorClosedError):
        ex.submit(tasks.square, 1)


def test_exit_on_error_still_closes_and_propagates(make_executor: Any) -> None:
    with pytest.raises(LookupError), make_executor() as ex:
        fut = ex.submit(tasks.square, 4)
        raise LookupError("user error")
    assert fut.result(timeout=30) == 16
    with pytest.raises(unifex.ExecutorClosedError):
        ex.submit(tasks.square, 1)


@pytest.mark.requires("concurrent")
@pytest.mark.parametrize("interrupt", [KeyboardInterrupt, SystemExit])
@pytest.mark.timeout(60)
def test_interrupt_terminates(make_executor: Any, interrupt: type[BaseException]) -> None:
    ex = make_executor(size=1)
    started, release = ex.Event(), ex.Event()
    try:
        with pytest.raises(interrupt), ex:
            running = ex.submit(tasks.signal_and_wait, started, release)
            queued = ex.submit(tasks.square, 2)
            assert started.wait(30)
            raise interrupt()
        with pytest.raises(unifex.TerminatedError):
            running.result(timeout=10)
        with pytest.raises((concurrent.futures.CancelledError, unifex.TerminatedError)):
            queued.result(timeout=10)
    finally:
        release.set()
