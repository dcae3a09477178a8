"""SPEC 4: ``Queue(maxsize)``: the ``queue.Queue`` interface with
``task_done``/``join``, raising ``queue.Empty`` / ``queue.Full``."""

from __future__ import annotations

import queue
from typing import Any

import pytest

from unifex.testing import tasks

# a start method can change this clause: run it under each (see unifex.testing)
pytestmark = pytest.mark.worker_start


def test_fifo_and_sizes_from_the_caller(ex: Any) -> None:
    q = ex.Queue()
    assert q.empty()
    for i in range(3):
        q.put(i)
    assert q.qsize() == 3 and not q.empty()
    assert [q.get(), q.get_nowait(), q.get(timeout=1)] == [0, 1, 2]


def test_empty_and_full(ex: Any) -> None:
    q = ex.Queue(maxsize=2)
    with pytest.raises(queue.Empty):
        q.get_nowait()
    with pytest.raises(queue.Empty):
        q.get(timeout=0.05)
    with pytest.raises(queue.Empty):
        q.get(block=False)
    q.put(1)
    q.put_nowait(2)
    assert q.full()
    with pytest.raises(queue.Full):
        q.put_nowait(3)
    with pytest.raises(queue.Full):
        q.put(3, timeout=0.05)
    with pytest.raises(queue.Full):
        q.put(3, block=False)


@pytest.mark.timeout(30)
def test_task_done_and_join(ex: Any) -> None:
    q = ex.Queue()
    q.put("a")
    q.put("b")
    assert q.get() == "a"
    q.task_done()
    assert q.get() == "b"
    q.task_done()
    q.join()
    with pytest.raises(ValueError):
        q.task_done()


@pytest.mark.timeout(60)
def test_items_cross_to_tasks_and_back(ex: Any) -> None:
    q = ex.Queue()
    assert ex.submit(tasks.queue_put_range, q, 5).result(timeout=30) == 5
    assert [q.get(timeout=10) for _ in range(5)] == [0, 1, 2, 3, 4]
    for _ in range(5):
        q.task_done()
    for item in ("x", (1, 2), {"k": [1]}):
        q.put(item)
    assert ex.submit(tasks.queue_get_n, q, 3).result(timeout=30) == ["x", (1, 2), {"k": [1]}]
    q.join()


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_producer_consumer_over_a_bounded_queue(make_executor: Any) -> None:
    ex = make_executor(size=4)
    q = ex.Queue(maxsize=3)
    consumers = [ex.submit(tasks.queue_get_n, q, 10) for _ in range(2)]
    producers = [ex.submit(tasks.queue_put_range, q, 10) for _ in range(2)]
    assert [p.result(timeout=60) for p in producers] == [10, 10]
    got = sorted(x for c in consumers for x in c.result(timeout=60))
    assert got == sorted(list(range(10)) * 2)
    q.join()
