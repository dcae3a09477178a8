"""Lifecycle 6: ``max_pending=N`` on every kind: ``submit`` (and
``apply_async``) blocks while N accepted tasks have not started (yielding to
the cooperative tasks of the thread on ``gevent``/``greenlet``), so a producer
cannot fill memory faster than the workers drain it."""

from __future__ import annotations

import threading
from typing import Any

import pytest

import unifex
from unifex.testing import KindConfig, tasks

from ._lifecycle import LIFECYCLE_KINDS

pytestmark = pytest.mark.kinds(*LIFECYCLE_KINDS)


def _not_started(futures: list[Any]) -> int:
    return sum(1 for f in futures if not f.running() and not f.done())


@pytest.mark.timeout(120)
def test_never_more_than_max_pending_tasks_wait(make_executor: Any) -> None:
    ex = make_executor(size=2, max_pending=3)
    futures: list[Any] = []
    for i in range(40):
        futures.append(ex.submit(tasks.square, i) if i % 2 else ex.apply_async(tasks.square, (i,)))
        assert _not_started(futures) <= 3
    assert [f.result(timeout=60) for f in futures] == [i * i for i in range(40)]


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_submit_blocks_until_a_task_starts(make_executor: Any, kind_config: KindConfig) -> None:
    ex = make_executor(size=1, max_pending=2)
    started, release = ex.Event(), ex.Event()
    blocker = ex.submit(tasks.signal_and_wait, started, release, "b")
    assert started.wait(30)
    queued = [ex.submit(tasks.square, i) for i in range(2)]  # the queue is full now
    if kind_config.has("cooperative"):
        # the producer is a task of another executor of the thread: its submit yields
        order: list[str] = []

        def produce() -> None:
            order.append("submitting")
            queued.append(ex.submit(tasks.square, 5))
            order.append("submitted")

        ex2 = make_executor(size=1)
        producer = ex2.submit(produce)
        assert unifex.wait([producer], timeout=0.5).not_done == {producer}
        assert order == ["submitting"]  # blocked in submit
        release.set()
        producer.result(timeout=30)
    else:
        returned = threading.Event()

        def produce_in_thread() -> None:
            queued.append(ex.submit(tasks.square, 5))
            returned.set()

        thread = threading.Thread(target=produce_in_thread)
        thread.start()
        try:
            assert not returned.wait(0.5)  # blocked in submit
            release.set()
            assert returned.wait(30)
        finally:
            release.set()
            thread.join(30)
    assert blocker.result(timeout=30) == "b"
    assert [f.result(timeout=30) for f in queued] == [0, 1, 25]


@pytest.mark.requires("threads")
@pytest.mark.timeout(60)
def test_close_wakes_a_blocked_submit_with_executor_closed_error(make_executor: Any) -> None:
    ex = make_executor(size=1, max_pending=1)
    started, release = ex.Event(), ex.Event()
    ex.submit(tasks.signal_and_wait, started, release)
    assert started.wait(30)
    ex.submit(tasks.square, 1)
    outcome: list[BaseException] = []

    def produce() -> None:
        try:
            ex.submit(tasks.square, 2)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=produce)
    thread.start()
    try:
        thread.join(0.3)
        assert thread.is_alive()
        ex.close(wait=False)
        thread.join(30)
        assert outcome and isinstance(outcome[0], unifex.ExecutorClosedError)
    finally:
        release.set()
        thread.join(30)


@pytest.mark.parametrize("bad", [0, -1, 2.5, "3"])
def test_bad_max_pending_raises_value_error(kind_config: KindConfig, bad: object) -> None:
    with pytest.raises(ValueError, match="max_pending"):
        unifex.executor(kind_config.kind, size=1, max_pending=bad, **kind_config.options)
