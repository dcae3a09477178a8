"""Ecosystem clause 1: every executor is a ``concurrent.futures.Executor`` and
every future a ``concurrent.futures.Future``; the stdlib's ``wait`` and
``as_completed`` accept them; ``shutdown(wait, cancel_futures)``."""

from __future__ import annotations

import concurrent.futures as cf
import gc
import weakref
from typing import Any

import pytest

import unifex
from unifex.testing import tasks


def test_executor_and_future_are_the_stdlib_types(ex: Any) -> None:
    assert isinstance(ex, cf.Executor)
    fut = ex.submit(tasks.square, 3)
    assert isinstance(fut, cf.Future) and isinstance(fut, unifex.Future)
    assert fut.result(timeout=30) == 9


def test_stdlib_wait_and_as_completed(ex: Any) -> None:
    futures = [ex.submit(tasks.square, i) for i in range(8)]
    done, not_done = cf.wait(futures, timeout=30)
    assert done == set(futures) and not not_done
    again = [ex.submit(tasks.square, i) for i in range(8)]
    assert sorted(f.result() for f in cf.as_completed(again, timeout=30)) == [i * i for i in range(8)]


def test_stdlib_wait_first_completed_mixed_with_a_stdlib_future(ex: Any) -> None:
    never: cf.Future[int] = cf.Future()
    fut = ex.submit(tasks.square, 4)
    done, not_done = cf.wait([never, fut], timeout=30, return_when=cf.FIRST_COMPLETED)
    assert done == {fut} and not_done == {never}


def test_shutdown_waits_and_refuses_new_work(ex: Any) -> None:
    futures = [ex.submit(tasks.sleep_return, 0.01, i) for i in range(6)]
    ex.shutdown(wait=True)
    assert [f.result(timeout=0) for f in futures] == list(range(6))
    with pytest.raises(RuntimeError):
        ex.submit(tasks.square, 1)


@pytest.mark.requires("concurrent")
@pytest.mark.kinds("thread", "pool", "gevent", "greenlet")
def test_shutdown_cancel_futures_cancels_what_has_not_started(make_executor: Any) -> None:
    ex = make_executor(size=1)
    started, release = ex.Event(), ex.Event()
    first = ex.submit(tasks.signal_and_wait, started, release, "first")
    assert started.wait(30)
    queued = [ex.submit(tasks.square, i) for i in range(5)]
    if "cooperative" in ex.capabilities:
        # nothing runs until this thread waits, and close() under greenlet runs
        # the accepted tasks even with wait=False
        release.set()
        ex.shutdown(wait=True, cancel_futures=True)
    else:
        ex.shutdown(wait=False, cancel_futures=True)
        release.set()
        ex.close(wait=True)
    assert first.result(timeout=0) == "first"
    assert all(f.cancelled() for f in queued)


def test_unifex_wait_leaves_no_waiter_behind(ex: Any) -> None:
    release = ex.Event()
    fut = ex.submit(tasks.wait_event_then, release, "ok") if "concurrent" in ex.capabilities else unifex.Future()
    for _ in range(50):
        unifex.wait([fut], timeout=0.001)
    list(unifex.as_completed([], timeout=1))
    assert not fut._callbacks and not fut._cfw
    release.set()
    if "concurrent" in ex.capabilities:
        assert fut.result(timeout=30) == "ok"


def test_as_completed_drops_what_it_yielded() -> None:
    futures: list[Any] = [unifex.Future() for _ in range(4)]
    futures[0].set_result(0)
    futures[1].set_result(1)
    refs = []
    for fut in unifex.as_completed(futures, timeout=30):
        for other in futures:
            if not other.done():  # finish the next one while the iterator waits
                other.set_result("later")
                break
        del other
        refs.append(weakref.ref(fut))
        futures.remove(fut)
        del fut
        gc.collect()
        assert refs[-1]() is None


def test_stdlib_future_cancelled_but_not_notified_is_not_done_for_wait() -> None:
    fut: cf.Future[int] = cf.Future()
    assert fut.cancel()
    done, not_done = unifex.wait([fut], timeout=0)
    assert not done and not_done == {fut}
    fut.set_running_or_notify_cancel()
    done, _ = unifex.wait([fut], timeout=0)
    assert done == {fut}
