"""The ``pool`` kind: the elastic thread pool grows on demand up to ``size``,
reuses idle workers before making new ones, shrinks after ``idle_timeout``,
stops each worker with a sentinel on close and drops the queue on terminate."""

from __future__ import annotations

import concurrent.futures
import threading
from typing import Any

import pytest

import unifex
from unifex.testing import tasks, wait_until


def pool(size: int, **options: Any) -> Any:
    return unifex.executor("pool", size=size, **options)


def test_no_worker_before_the_first_task() -> None:
    with pool(4) as ex:
        assert ex.workers == 0
        ex.submit(tasks.square, 2).result(timeout=10)
        assert ex.workers == 1


def test_idle_workers_are_reused_before_new_ones_are_made() -> None:
    with pool(8) as ex:
        for i in range(50):
            assert ex.submit(tasks.square, i).result(timeout=10) == i * i
        # one task at a time: the one idle worker takes each of them
        assert ex.workers == 1


@pytest.mark.timeout(60)
def test_grows_on_demand_up_to_size() -> None:
    with pool(3) as ex:
        release = ex.Event()
        started = ex.dict(n=0)
        lock = ex.Lock()
        try:
            futures = [ex.submit(tasks.count_then_wait, (started, lock, release)) for _ in range(6)]
            assert wait_until(lambda: started["n"] == 3, timeout=30)
            assert ex.workers == 3  # never more than size, even with 6 tasks waiting
            assert started["n"] == 3
        finally:
            release.set()
        assert [f.result(timeout=30) for f in futures] == [1] * 6
        assert ex.workers <= 3


@pytest.mark.timeout(60)
def test_idle_workers_exit_after_idle_timeout() -> None:
    with pool(4, idle_timeout=0.2) as ex:
        release = ex.Event()
        try:
            futures = [ex.submit(tasks.wait_event_then, release, i) for i in range(4)]
            assert wait_until(lambda: ex.workers == 4, timeout=30)
        finally:
            release.set()
        assert [f.result(timeout=30) for f in futures] == [0, 1, 2, 3]
        assert wait_until(lambda: ex.workers == 0, timeout=30)
        # the pool grows again after shrinking
        assert ex.submit(tasks.square, 5).result(timeout=10) == 25


def test_close_stops_every_worker_after_the_queued_tasks() -> None:
    ex = pool(2)
    futures = [ex.submit(tasks.sleep_return, 0.01, i) for i in range(10)]
    names = {t.name for t in threading.enumerate() if t.name.startswith("unifex-pool-")}
    assert names
    ex.close(wait=True)
    assert [f.result() for f in futures] == list(range(10))
    assert ex.workers == 0
    assert not names & {t.name for t in threading.enumerate()}


@pytest.mark.timeout(60)
def test_terminate_drops_the_queue() -> None:
    ex = pool(1)
    started, release = ex.Event(), ex.Event()
    try:
        running = ex.submit(tasks.signal_and_wait, started, release)
        queued = [ex.submit(tasks.square, i) for i in range(20)]
        assert started.wait(30)
        ex.terminate()
        assert all(f.cancelled() for f in queued)
        with pytest.raises(unifex.TerminatedError):
            running.result(timeout=5)
        with pytest.raises(concurrent.futures.CancelledError):
            queued[0].result(timeout=5)
    finally:
        release.set()
    assert wait_until(lambda: ex.workers == 0, timeout=30)


@pytest.mark.parametrize("bad", [0, -1, "1", True])
def test_bad_idle_timeout(bad: Any) -> None:
    with pytest.raises(ValueError, match="idle_timeout"):
        pool(2, idle_timeout=bad)


def test_idle_timeout_none_never_shrinks() -> None:
    with pool(2, idle_timeout=None) as ex:
        ex.submit(tasks.square, 1).result(timeout=10)
        assert ex.workers == 1


def test_uses_no_concurrent_futures_executor() -> None:
    import inspect

    import unifex._backends.pool as module

    source = inspect.getsource(module)
    assert "ThreadPoolExecutor" not in source and "import concurrent" not in source
