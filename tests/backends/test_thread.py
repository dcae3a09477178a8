"""The ``thread`` kind: OS threads made on demand up to ``size``, reused, and
per-task timeouts that cannot kill a thread but end its unifex waits."""

from __future__ import annotations

import threading

import pytest

import unifex
from unifex._backends.thread import ThreadExecutor
from unifex.testing import tasks, wait_until


def test_threads_are_made_on_demand_and_reused() -> None:
    with unifex.executor("thread", size=4) as ex:
        assert isinstance(ex, ThreadExecutor)
        assert ex._threads == []
        idents = {ex.submit(tasks.thread_ident).result(timeout=10) for _ in range(20)}
        assert len(idents) == 1
        assert threading.get_ident() not in idents


@pytest.mark.timeout(60)
def test_never_more_threads_than_size() -> None:
    with unifex.executor("thread", size=2) as ex:
        assert isinstance(ex, ThreadExecutor)
        release = ex.Event()
        try:
            futures = [ex.submit(tasks.wait_event_then, release, i) for i in range(6)]
            assert wait_until(lambda: len(ex._threads) == 2, timeout=10)
        finally:
            release.set()
        assert [f.result(timeout=30) for f in futures] == list(range(6))
        assert len(ex._threads) == 2


def test_thread_name_prefix_option() -> None:
    with unifex.executor("thread", size=1, thread_name_prefix="crawler") as ex:
        name = ex.submit(lambda: threading.current_thread().name).result(timeout=10)
    assert name.startswith("crawler-")


@pytest.mark.timeout(60)
def test_timed_out_thread_finishes_in_the_background() -> None:
    """Threads cannot be killed: the future fails at the deadline, the function
    runs on until it returns, and its late result is dropped."""
    with unifex.executor("thread", size=1) as ex:
        finished = ex.Event()

        def uninterruptible() -> str:
            # a plain threading wait: no unifex call, so nothing can stop it early
            threading.Event().wait(1.5)
            finished.set()
            return "late"

        fut = ex.apply_async(uninterruptible, timeout=0.05)
        with pytest.raises(unifex.TaskTimeoutError):
            fut.result(timeout=10)
        assert not finished.is_set()  # failed at the deadline, before the function returned
        assert finished.wait(10)  # it ran to the end in the background
        with pytest.raises(unifex.TaskTimeoutError):
            fut.result()
