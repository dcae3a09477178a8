"""The ``gevent`` kind: tasks are greenlets of a ``gevent.pool.Pool`` on the hub of
the creating thread; every unifex wait yields to that hub, from the main greenlet
and from tasks; futures can be waited on and settled across OS threads; per-task
timeouts and ``terminate()`` kill greenlets; ``close()`` leaves none behind.

Tests that need ``gevent.monkey.patch_all()`` live in test_gevent_monkey.py (they
patch a subprocess, never this one)."""

from __future__ import annotations

import concurrent.futures
import gc
import itertools
import queue
import sys
import threading
import time
import weakref
from typing import Any

import gevent
import gevent.event
import gevent.lock
import gevent.queue
import pytest
from greenlet import getcurrent

import unifex
from unifex import _wait
from unifex._backends.gevent import GeventExecutor, GeventWaitContext
from unifex.testing import tasks, wait_until


def gev(size: int = 4) -> Any:
    return unifex.executor("gevent", size=size)


def current_greenlet(_: Any = None) -> Any:
    return getcurrent()


def current_greenlet_after(seconds: float) -> Any:
    unifex.sleep(seconds)  # tasks overlap: several workers take part
    return getcurrent()


# -- the executor and its wait context ------------------------------------------------


def test_kind_size_and_capabilities() -> None:
    with gev() as ex:
        assert isinstance(ex, GeventExecutor)
        assert (ex.kind, ex.size) == ("gevent", 4)
        assert {"concurrent", "cooperative", "kill_running"} <= GeventExecutor.capabilities
    with unifex.executor("gevent") as ex:
        assert ex.size == 100


def test_unknown_option_is_refused() -> None:
    with pytest.raises(TypeError, match="gevent"):
        unifex.executor("gevent", size=2, seed=3)


def test_wait_context_is_pushed_while_open_and_removed_at_close() -> None:
    assert not isinstance(_wait.current(), GeventWaitContext)
    with gev() as ex:
        assert isinstance(_wait.current(), GeventWaitContext)
        assert ex.submit(tasks.square, 3).result(timeout=10) == 9
    assert _wait.current() is _wait.THREAD


def test_tasks_run_as_greenlets_of_the_pool_in_this_thread() -> None:
    with gev() as ex:
        glet = ex.submit(current_greenlet).result(timeout=10)
        assert isinstance(glet, gevent.Greenlet)
        assert glet is not getcurrent()
        assert ex.submit(tasks.thread_ident).result(timeout=10) == threading.get_ident()


@pytest.mark.timeout(30)
def test_waiting_in_the_main_greenlet_lets_other_greenlets_run() -> None:
    """A future's result() switches to the hub: tasks and the program's own
    greenlets run meanwhile."""
    ticks: list[int] = []

    def ticker() -> None:
        for i in range(5):
            ticks.append(i)
            gevent.sleep(0.01)

    with gev() as ex:
        own = gevent.spawn(ticker)
        assert ex.submit(tasks.sleep_return, 0.2, "done").result(timeout=10) == "done"
        assert ticks == [0, 1, 2, 3, 4]
        own.join(timeout=5)


@pytest.mark.timeout(30)
def test_tasks_wait_on_each_others_futures_without_blocking_the_hub() -> None:
    """A task that waits on another task's future yields: with two slots, a chain
    of tasks each waiting on the next completes."""

    def waits_on(fut: Any) -> Any:
        return ("outer", fut.result(timeout=10))

    with gev(size=2) as ex:
        release = ex.Event()
        inner = ex.submit(tasks.wait_event_then, release, "inner", 10)
        outer = ex.submit(waits_on, inner)
        unifex.sleep(0.05)
        assert not outer.done()
        release.set()
        assert outer.result(timeout=10) == ("outer", "inner")


@pytest.mark.timeout(30)
def test_wait_as_completed_and_map_from_inside_a_task() -> None:
    def fan_out(ex: Any) -> tuple[list[int], list[int], int]:
        futures = [ex.submit(tasks.sleep_return, 0.01 * (3 - i), i) for i in range(3)]
        done, _ = unifex.wait(futures, timeout=10)
        order = [f.result() for f in unifex.as_completed(futures, timeout=10)]
        return sorted(order), list(ex.map(tasks.square, range(4))), len(done)

    with gev(size=8) as ex:
        assert ex.submit(fan_out, ex).result(timeout=20) == ([0, 1, 2], [0, 1, 4, 9], 3)


@pytest.mark.timeout(30)
def test_polling_from_the_caller_with_unifex_sleep() -> None:
    with gev() as ex:
        shared = ex.dict(n=0)

        def bump() -> None:
            for _ in range(5):
                shared["n"] += 1
                unifex.sleep(0.005)

        ex.submit(bump)
        assert wait_until(lambda: shared["n"] == 5, timeout=10)


def test_a_full_pool_never_blocks_submit() -> None:
    """``Pool.spawn`` blocks when the pool is full; unifex queues in front of it,
    so submitting many waiting tasks to a small pool returns at once."""
    with gev(size=2) as ex:
        release = ex.Event()
        futures = [ex.submit(tasks.wait_event_then, release, i, 10) for i in range(50)]
        # submit neither blocked nor yielded: no task has started yet
        assert not any(f.running() for f in futures)
        unifex.sleep(0.05)  # the hub runs: both workers take a task and wait on the event
        assert sum(f.running() for f in futures) == 2
        release.set()
        assert [f.result(timeout=10) for f in futures] == list(range(50))


def test_one_at_a_time_reuses_parked_workers() -> None:
    with gev(size=4) as ex:
        seen = {id(ex.submit(current_greenlet).result(timeout=10)) for _ in range(20)}
        # a worker parks when idle and takes the next task: no greenlet per task
        assert len(seen) == 1


def test_concurrency_never_exceeds_size() -> None:
    with gev(size=3) as ex:
        counter = ex.dict(now=0, max=0)
        lock = ex.Lock()
        sem = ex.Semaphore(100)
        assert sum(ex.map(tasks.semaphore_probe, [sem] * 12, [counter] * 12, [lock] * 12, [0.01] * 12)) == 12
        assert counter["max"] == 3


# -- other OS threads -----------------------------------------------------------------


@pytest.mark.timeout(30)
def test_a_future_waited_on_from_another_os_thread() -> None:
    """The other thread blocks on a plain lock; the hub thread keeps running the
    task (the main greenlet waits on a future the thread settles)."""
    with gev() as ex:
        fut = ex.submit(tasks.sleep_return, 0.1, "x")
        got: list[Any] = []
        finished: unifex.Future[None] = unifex.Future()

        def other() -> None:
            got.append(fut.result(timeout=10))
            finished.set_result(None)

        thread = threading.Thread(target=other)
        thread.start()
        finished.result(timeout=10)  # yields to the hub; woken from the other thread
        thread.join(10)
        assert got == ["x"]


@pytest.mark.timeout(30)
def test_untimed_wait_on_a_future_settled_by_another_thread_does_not_loop_exit() -> None:
    """Nothing else keeps the hub busy: gevent would raise LoopExit if the waiter
    did not hold the loop open for the other thread's wake-up."""
    with gev():
        fut: unifex.Future[str] = unifex.Future()
        thread = threading.Timer(0.1, fut.set_result, ("late",))
        thread.start()
        assert fut.result() == "late"
        thread.join(10)


@pytest.mark.timeout(30)
def test_mixed_kinds_in_wait_and_as_completed() -> None:
    with gev() as ex, unifex.executor("thread", size=2) as tex:
        thread_fut = tex.submit(time.sleep, 0.1)
        gevent_fut = ex.submit(tasks.sleep_return, 0.05, "g")
        done, not_done = unifex.wait([thread_fut, gevent_fut], timeout=10)
        assert done == {thread_fut, gevent_fut} and not not_done
        futures = [tex.submit(tasks.square, 2), ex.submit(tasks.square, 3)]
        assert sorted(f.result() for f in unifex.as_completed(futures, timeout=10)) == [4, 9]


@pytest.mark.timeout(30)
def test_submit_close_from_another_os_thread() -> None:
    with gev() as ex:
        results: list[Any] = []
        finished: unifex.Future[None] = unifex.Future()

        def other() -> None:
            futures = [ex.submit(tasks.sleep_return, 0.01, i) for i in range(5)]
            results.extend(f.result(timeout=10) for f in futures)
            finished.set_result(None)

        thread = threading.Thread(target=other)
        thread.start()
        finished.result(timeout=10)
        thread.join(10)
        assert results == list(range(5))


@pytest.mark.timeout(30)
def test_close_with_wait_from_another_os_thread() -> None:
    ex = gev(size=2)
    futures = [ex.submit(tasks.sleep_return, 0.05, i) for i in range(6)]
    closed: unifex.Future[bool] = unifex.Future()

    def other() -> None:
        ex.close(wait=True)  # blocks this thread until the hub thread drained the queue
        closed.set_result(all(f.done() for f in futures))

    thread = threading.Thread(target=other)
    thread.start()
    assert closed.result(timeout=10) is True  # the main greenlet runs the hub meanwhile
    thread.join(10)
    assert [f.result() for f in futures] == list(range(6))
    assert wait_until(lambda: _wait.current() is _wait.THREAD, timeout=10)
    assert len(ex._pool) == 0


@pytest.mark.timeout(30)
def test_terminate_from_another_os_thread() -> None:
    ex = gev(size=2)
    started = ex.Event()
    running = ex.submit(tasks.signal_and_sleep, started, 30, "never")
    queued = ex.submit(tasks.square, 2)
    assert started.wait(10)
    done: unifex.Future[None] = unifex.Future()

    def other() -> None:
        ex.terminate()
        done.set_result(None)

    thread = threading.Thread(target=other)
    thread.start()
    done.result(timeout=10)
    thread.join(10)
    with pytest.raises(unifex.TerminatedError):
        running.result(timeout=10)
    assert queued.done()
    assert wait_until(lambda: len(ex._pool) == 0, timeout=10)  # the kill ran on the hub
    assert _wait.current() is not ex._ctx


# -- per-task timeout and terminate ---------------------------------------------------


def sleep_recording(log: list[str], seconds: float) -> str:
    try:
        unifex.sleep(seconds)
    except BaseException as exc:
        log.append(type(exc).__name__)
        raise
    log.append("finished")
    return "finished"


@pytest.mark.timeout(30)
def test_task_timeout_kills_the_greenlet_and_fails_the_future() -> None:
    log: list[str] = []
    with gev(size=1) as ex:
        fut = ex.apply_async(sleep_recording, (log, 10), timeout=0.1)
        with pytest.raises(unifex.TaskTimeoutError, match=r"sleep_recording.*0\.1 s"):
            fut.result(timeout=10)
        assert log == ["Timeout"]  # gevent.Timeout was raised inside the task
        # the one worker serves the next task
        assert ex.submit(tasks.square, 4).result(timeout=10) == 16


@pytest.mark.timeout(30)
def test_task_timeout_while_blocked_on_a_helper() -> None:
    with gev(size=2) as ex:
        never = ex.Event()
        fut = ex.apply_async(tasks.wait_event, (never, 30), timeout=0.1)
        with pytest.raises(unifex.TaskTimeoutError):
            fut.result(timeout=10)


def swallow_everything(seconds: float, log: list[str]) -> str:
    try:
        unifex.sleep(seconds)
    except BaseException:
        log.append("swallowed")
    unifex.sleep(0.3)
    log.append("ran on")
    return "late"


@pytest.mark.timeout(30)
def test_a_task_that_swallows_the_timeout_still_fails_at_the_deadline() -> None:
    log: list[str] = []
    with gev(size=1) as ex:
        fut = ex.apply_async(swallow_everything, (10, log), timeout=0.1)
        with pytest.raises(unifex.TaskTimeoutError, match="ignored"):
            fut.result(timeout=0.25)
    assert log == ["swallowed", "ran on"]


@pytest.mark.timeout(30)
def test_terminate_kills_running_greenlets_and_cancels_queued() -> None:
    log: list[str] = []
    ex = gev(size=2)
    running = [ex.submit(sleep_recording, log, 30) for _ in range(2)]
    queued = [ex.submit(sleep_recording, log, 30) for _ in range(3)]
    unifex.sleep(0.05)
    assert all(f.running() for f in running)
    ex.terminate()
    for fut in running:
        with pytest.raises(unifex.TerminatedError):
            fut.result(timeout=1)
    for fut in queued:
        assert fut.cancelled()
        with pytest.raises(concurrent.futures.CancelledError):
            fut.result(timeout=1)
    assert log == ["GreenletExit", "GreenletExit"]  # killed where they slept
    assert len(ex._pool) == 0  # terminate returned after the greenlets died
    with pytest.raises(unifex.ExecutorClosedError):
        ex.submit(tasks.square, 1)


@pytest.mark.timeout(30)
def test_terminate_from_inside_a_task() -> None:
    ex = gev(size=3)
    other = ex.submit(tasks.sleep_return, 30)

    def stop() -> str:
        ex.terminate()
        return "stopped the others"

    me = ex.submit(stop)
    with pytest.raises(unifex.TerminatedError):
        other.result(timeout=10)
    with pytest.raises(unifex.TerminatedError):
        me.result(timeout=10)  # its own future fails too: it was running
    assert wait_until(lambda: len(ex._pool) == 0, timeout=10)


# -- close ----------------------------------------------------------------------------


@pytest.mark.timeout(30)
def test_no_greenlet_left_running_after_close() -> None:
    with gev(size=8) as ex:
        def where(i: int) -> Any:
            unifex.sleep(0.01 * (i % 3))
            return getcurrent()

        futures = [ex.submit(where, i) for i in range(40)]
    glets = {f.result() for f in futures}
    assert glets and all(g.dead for g in glets)
    assert len(ex._pool) == 0
    assert not ex._idle  # parked workers were sent home too


@pytest.mark.timeout(30)
def test_close_waits_for_queued_tasks_and_their_callbacks() -> None:
    seen: list[int] = []
    ex = gev(size=2)
    futures = [ex.apply_async(tasks.sleep_return, (0.01, i), callback=seen.append) for i in range(10)]
    ex.close(wait=True)
    assert all(f.done() for f in futures)
    assert sorted(seen) == list(range(10))
    assert len(ex._pool) == 0


@pytest.mark.timeout(30)
def test_close_without_wait_keeps_waits_yielding_until_the_tasks_end() -> None:
    ex = gev(size=2)
    futures = [ex.submit(tasks.sleep_return, 0.05, i) for i in range(4)]
    ex.close(wait=False)
    # the caller still waits through the hub: the tasks get to run
    assert [f.result(timeout=10) for f in futures] == [0, 1, 2, 3]
    assert wait_until(lambda: len(ex._pool) == 0, timeout=10)
    assert _wait.current() is _wait.THREAD
    ex.close()  # idempotent


@pytest.mark.timeout(30)
def test_close_with_wait_from_inside_a_task_waits_for_the_others() -> None:
    ex = gev(size=3)
    slow = ex.submit(tasks.sleep_return, 0.2, "slow")

    def closer() -> bool:
        ex.close(wait=True)
        return bool(slow.done())

    assert ex.submit(closer).result(timeout=10) is True
    ex.close()
    assert len(ex._pool) == 0


def _hub_turns(done: Any, turns: int = 1000) -> bool:
    """Let the hub run (gevent.sleep: no unifex wait context may be left) until ``done()``."""
    for _ in range(turns):
        if done():
            return True
        gevent.sleep(0.001)
    return bool(done())


@pytest.mark.timeout(30)
def test_an_executor_dropped_without_close_releases_its_parked_workers() -> None:
    ex = gev(size=3)
    glets = {f.result(timeout=10) for f in [ex.submit(current_greenlet_after, 0.01) for _ in range(6)]}
    assert glets and not any(g.dead for g in glets)  # parked, waiting for work
    ctx = ex._ctx
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    assert ref() is None  # a parked worker does not keep its executor
    assert ctx not in _wait._local.contexts  # its wait context left the thread
    assert _hub_turns(lambda: all(g.dead for g in glets))  # the workers went home


@pytest.mark.timeout(30)
def test_an_executor_dropped_with_queued_tasks_runs_them_first() -> None:
    ran: list[int] = []
    ex = gev(size=2)
    ex.submit(current_greenlet).result(timeout=10)  # a parked worker, woken for the tasks below
    for i in range(6):
        ex.submit(ran.append, i)  # fire and forget: the caller keeps no future
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    assert _hub_turns(lambda: ref() is None)
    assert ran == list(range(6))


# -- helpers --------------------------------------------------------------------------


def test_helpers_are_gevent_primitives_with_the_stdlib_spelling() -> None:
    with gev() as ex:
        assert isinstance(ex.Event()._event, gevent.event.Event)  # type: ignore[attr-defined]
        assert isinstance(ex.Queue()._q, gevent.queue.JoinableQueue)  # type: ignore[attr-defined]
        assert type(ex.dict(a=1)) is dict
        lock = ex.Lock()
        assert lock.acquire() and lock.locked()
        assert lock.acquire(blocking=False) is False
        assert lock.acquire(timeout=0.01) is False
        lock.release()
        with pytest.raises(RuntimeError):
            lock.release()
        with pytest.raises(ValueError):
            lock.acquire(False, 1.0)
        rlock = ex.RLock()
        with rlock, rlock:
            pass
        with pytest.raises(RuntimeError):
            rlock.release()
        sem = ex.Semaphore(0)
        sem.release(3)
        assert all(sem.acquire(timeout=0.01) for _ in range(3))
        assert sem.acquire(blocking=False) is False
        bounded = ex.BoundedSemaphore(1)
        with pytest.raises(ValueError):
            bounded.release()


def test_queue_raises_the_stdlib_empty_and_full() -> None:
    with gev() as ex:
        q = ex.Queue(maxsize=1)
        with pytest.raises(queue.Empty):
            q.get(timeout=0.01)
        with pytest.raises(queue.Empty):
            q.get_nowait()
        q.put(1)
        with pytest.raises(queue.Full):
            q.put(2, timeout=0.01)
        with pytest.raises(queue.Full):
            q.put_nowait(2)
        assert q.get() == 1
        q.task_done()
        q.join()


@pytest.mark.timeout(30)
def test_condition_between_tasks_and_the_main_greenlet() -> None:
    with gev() as ex:
        cond = ex.Condition()
        shared = ex.dict(ready=False)
        waiters = [ex.submit(tasks.condition_wait, cond, shared, "ready", 10) for _ in range(3)]
        unifex.sleep(0.02)
        assert not any(f.done() for f in waiters)
        with cond:
            shared["ready"] = True
            cond.notify_all()
        assert [f.result(timeout=10) for f in waiters] == [True] * 3
        with cond:
            assert cond.wait(timeout=0.01) is False
            assert cond.wait_for(lambda: False, timeout=0.01) is False
        with pytest.raises(RuntimeError):
            cond.notify()
        plain = ex.Condition(ex.Lock())
        with plain:
            assert plain.wait(0.01) is False


@pytest.mark.timeout(30)
def test_helper_waits_in_the_main_greenlet_yield_to_tasks() -> None:
    with gev() as ex:
        q = ex.Queue()
        ex.submit(tasks.queue_put_range, q, 3)
        assert [q.get(timeout=10) for _ in range(3)] == [0, 1, 2]
        sem = ex.Semaphore(0)
        ex.submit(sem.release)
        assert sem.acquire(timeout=10)


# -- without monkey patching ----------------------------------------------------------


@pytest.mark.timeout(30)
def test_without_monkey_patching_time_sleep_blocks_every_task() -> None:
    """The documented limit: unpatched blocking calls hold the hub, so tasks
    run one after another."""
    with gev(size=4) as ex:
        blocking = sorted(ex.map(timed_call, [time.sleep] * 4, [0.1] * 4))
        cooperative = list(ex.map(timed_call, [unifex.sleep] * 4, [0.1] * 4))
    # time.sleep: each task starts after the previous one ended
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(blocking))
    # unifex.sleep: every task started before any ended
    assert max(s for s, _ in cooperative) < min(e for _, e in cooperative)


def timed_call(sleeper: Any, seconds: float) -> tuple[float, float]:
    start = time.monotonic()
    sleeper(seconds)
    return start, time.monotonic()


@pytest.mark.timeout(120)
def test_many_os_threads_submitting_leave_the_hub_sound() -> None:
    """Calls from other threads reach the hub through one async watcher, never
    ``run_callback_threadsafe`` (whose ``ev_ref`` from a foreign thread can corrupt
    the loop's reference count: ``LoopExit``, hub ``ref=-1``)."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible
    try:
        for _ in range(3):
            with gev(size=10) as ex:
                futures: list[unifex.Future[int]] = []
                guard = threading.Lock()

                def submitter(ex: Any = ex, futures: list[unifex.Future[int]] = futures, guard: threading.Lock = guard) -> None:
                    mine = []
                    for i in range(2000):
                        mine.append(ex.submit(abs, -i))
                        if i % 250 == 0:
                            mine[-1].result(timeout=60)  # a foreign thread waits on a gevent future
                    with guard:
                        futures.extend(mine)

                threads = [threading.Thread(target=submitter) for _ in range(8)]
                for t in threads:
                    t.start()
                while any(t.is_alive() for t in threads):
                    unifex.sleep(0.0005)  # a timed wait on the hub while the others submit
                for t in threads:
                    t.join(60)
                assert sorted(f.result(timeout=60) for f in futures) == sorted(list(range(2000)) * 8)
            # the hub still serves timed waits afterwards
            gevent.sleep(0.001)
            assert gevent.event.Event().wait(timeout=0.01) is False
    finally:
        sys.setswitchinterval(old)
