"""The ``greenlet`` kind's helpers beyond the conformance suite: FIFO hand-off
(deterministic order), use from the caller and from other OS threads, stdlib
errors, and what a stopped task leaves behind."""

from __future__ import annotations

import pickle
import queue
import threading
import time
from typing import Any

import pytest

import unifex
from unifex.testing import tasks

pytestmark = pytest.mark.timeout(60)


def make(size: int | None = None, **options: Any) -> Any:
    return unifex.executor("greenlet", size=size, **options)


def take(lock: Any, log: list[str], name: str) -> None:
    with lock:
        log.append(name)
        unifex.sleep(0)


@pytest.mark.parametrize("factory", ["Lock", "RLock", "Semaphore", "BoundedSemaphore"])
def test_a_released_lock_goes_to_the_waiters_in_arrival_order(factory: str) -> None:
    log: list[str] = []
    with make() as ex:
        lock = getattr(ex, factory)()
        lock.acquire()
        futs = [ex.submit(take, lock, log, name) for name in "abcd"]
        unifex.sleep(0)  # all four start and queue on the lock
        assert log == []
        lock.release()
        unifex.wait(futs, timeout=5)
    assert log == ["a", "b", "c", "d"]


def test_lock_from_the_caller_and_errors_as_in_threading() -> None:
    with make() as ex:
        lock = ex.Lock()
        assert lock.acquire() and lock.locked()
        assert lock.acquire(blocking=False) is False
        assert lock.acquire(timeout=0.01) is False
        with pytest.raises(ValueError):
            lock.acquire(False, 1)
        with pytest.raises(ValueError):
            lock.acquire(timeout=-2)
        assert "held by the caller" in repr(lock)
        lock.release()
        with pytest.raises(RuntimeError):
            lock.release()
        assert repr(lock) == f"<unlocked unifex_greenlet.Lock object at {id(lock):#x}>"


def test_a_lock_released_by_a_task_wakes_the_waiting_caller() -> None:
    def hold(lock: Any) -> None:
        with lock:
            unifex.sleep(0.02)

    with make() as ex:
        lock = ex.Lock()
        fut = ex.submit(hold, lock)
        unifex.sleep(0)
        assert lock.locked()
        assert lock.acquire(timeout=5)  # the caller drives the task until it releases
        assert fut.done()
        lock.release()


def test_rlock_belongs_to_one_task() -> None:
    def grab_and_hold(rlock: Any, ev: Any) -> int:
        with rlock, rlock:
            ev.wait(5)
        return tasks.rlock_reenter(rlock, 3)

    with make() as ex:
        rlock, ev = ex.RLock(), ex.Event()
        fut = ex.submit(grab_and_hold, rlock, ev)
        unifex.sleep(0)
        with pytest.raises(RuntimeError):
            rlock.release()  # the caller does not own it
        assert rlock.acquire(timeout=0.01) is False
        assert "depth 2" in repr(rlock)
        ev.set()
        assert fut.result(timeout=5) == 3
        assert rlock.acquire(blocking=False)
        rlock.release()


def test_semaphores() -> None:
    with make() as ex:
        with pytest.raises(ValueError):
            ex.Semaphore(-1)
        sem = ex.Semaphore(2)
        counter, lock = ex.dict(now=0, max=0), ex.Lock()
        futs = [ex.submit(tasks.semaphore_probe, sem, counter, lock, 0.01) for _ in range(6)]
        unifex.wait(futs, timeout=5)
        assert counter["max"] == 2
        sem.release(3)  # a plain semaphore may go above its start value
        assert all(sem.acquire(blocking=False) for _ in range(5))
        assert sem.acquire(blocking=False) is False
        bounded = ex.BoundedSemaphore(1)
        with pytest.raises(ValueError, match="released too many times"):
            bounded.release()
        with pytest.raises(ValueError):
            bounded.acquire(False, 1)


def test_event_from_tasks_and_caller() -> None:
    with make() as ex:
        ev = ex.Event()
        waiters = [ex.submit(tasks.wait_event, ev, 5) for _ in range(3)]
        late = ex.submit(tasks.wait_event, ev, 0.01)
        assert late.result(timeout=5) is False
        assert ev.wait(0.01) is False
        ex.submit(tasks.set_event, ev)
        assert ev.wait() is True  # the caller runs the setter; no timeout needed
        assert [f.result(timeout=5) for f in waiters] == [True] * 3
        ev.clear()
        assert not ev.is_set()


def test_condition_wait_for_notify_and_errors() -> None:
    with make() as ex:
        for lock in (None, ex.Lock(), ex.RLock()):
            cond, shared = ex.Condition(lock), ex.dict(ready=False)
            waiters = [ex.submit(tasks.condition_wait, cond, shared, "ready", 5) for _ in range(3)]
            unifex.sleep(0)
            with cond:
                shared["ready"] = True
                cond.notify_all()
            assert [f.result(timeout=5) for f in waiters] == [True] * 3
        cond = ex.Condition()
        with pytest.raises(RuntimeError):
            cond.notify()
        with pytest.raises(RuntimeError):
            cond.wait(0.01)
        with cond:
            assert cond.wait(0.01) is False
            assert cond.wait_for(lambda: False, 0.01) is False


def test_condition_notify_wakes_one_at_a_time_in_order() -> None:
    log: list[str] = []

    def wait_then_log(cond: Any, name: str) -> None:
        with cond:
            cond.wait(5)
            log.append(name)

    with make() as ex:
        cond = ex.Condition()
        futs = [ex.submit(wait_then_log, cond, name) for name in "abc"]
        unifex.sleep(0)
        for expected in (["a"], ["a", "b"], ["a", "b", "c"]):
            with cond:
                cond.notify()
            unifex.sleep(0)
            unifex.sleep(0)
            assert log == expected
        unifex.wait(futs, timeout=5)


def test_queue_stdlib_behaviour() -> None:
    with make() as ex:
        q = ex.Queue(2)
        q.put(1)
        q.put_nowait(2)
        assert q.full() and q.qsize() == 2
        with pytest.raises(queue.Full):
            q.put_nowait(3)
        with pytest.raises(queue.Full):
            q.put(3, timeout=0.01)
        with pytest.raises(ValueError):
            q.put(3, timeout=-1)
        assert [q.get(), q.get_nowait()] == [1, 2]
        with pytest.raises(queue.Empty):
            q.get_nowait()
        with pytest.raises(queue.Empty):
            q.get(timeout=0.01)
        q.task_done()
        q.task_done()
        with pytest.raises(ValueError, match="too many times"):
            q.task_done()
        q.join()  # nothing unfinished: returns at once


def test_queue_hands_items_to_waiting_getters_in_order_and_join_waits() -> None:
    with make() as ex:
        q = ex.Queue(1)
        getters = [ex.submit(q.get) for _ in range(3)]
        unifex.sleep(0)  # all three wait
        producer = ex.submit(tasks.queue_put_range, q, 5)
        assert [f.result(timeout=5) for f in getters] == [0, 1, 2]
        assert [q.get(timeout=5), q.get(timeout=5)] == [3, 4]
        assert producer.result(timeout=5) == 5
        for _ in range(5):
            q.task_done()

        q2 = ex.Queue()
        consumer = ex.submit(tasks.queue_get_n, q2, 4)
        for i in range(4):
            q2.put(i)
        q2.join()  # the caller runs the consumer until every item is marked done
        assert consumer.done() and consumer.result() == [0, 1, 2, 3]


def test_an_item_handed_to_a_stopped_getter_is_not_lost() -> None:
    with make() as ex:
        q = ex.Queue()
        fut = ex.apply_async(q.get, timeout=0.05)
        other = ex.submit(q.get)
        unifex.sleep(0)  # both getters wait
        time.sleep(0.1)  # the first one's deadline passes while nothing runs
        q.put("x")  # handed to the first getter, which has not resumed yet
        unifex.sleep(0)  # the scheduler stops it first: the item goes to the next getter
        assert isinstance(fut.exception(timeout=5), unifex.TaskTimeoutError)
        assert other.result(timeout=5) == "x"


def test_helpers_work_across_os_threads() -> None:
    with make() as ex:
        ev, q = ex.Event(), ex.Queue()
        fut = ex.submit(tasks.wait_event_then, ev, "released", 10)
        setter = threading.Timer(0.05, ev.set)
        setter.start()
        try:
            assert fut.result() == "released"  # a wait on its own Event, set by another thread
        finally:
            setter.join(5)
        ex.submit(q.put, "from a task")

        def consume() -> Any:
            return q.get(timeout=10)  # another thread blocks on the queue (a plain lock wait there)

        with unifex.executor("thread", size=1) as tex:
            got = tex.submit(consume)
            assert got.result(timeout=10) == "from a task"


def test_helpers_cannot_be_pickled() -> None:
    with make() as ex:
        with pytest.raises(TypeError, match="cannot be pickled"):
            pickle.dumps(ex.Lock())
        assert ex.dict(a=1) == {"a": 1}


def test_lock_ownership_follows_the_task_not_its_worker_greenlet() -> None:
    with make(size=1) as ex:
        lock, rlock = ex.Lock(), ex.RLock()
        ex.submit(lock.acquire).result(timeout=5)
        ex.submit(rlock.acquire).result(timeout=5)
        assert repr(lock) == f"<locked unifex_greenlet.Lock object held by task #1 GreenletLock.acquire (which ended without releasing it) at {id(lock):#x}>"
        # the next task runs in the same reused worker greenlet, yet does not own the RLock
        assert ex.submit(rlock.acquire, blocking=False).result(timeout=5) is False
        with pytest.raises(RuntimeError):
            ex.submit(rlock.release).result(timeout=5)
