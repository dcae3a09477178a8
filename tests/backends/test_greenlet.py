"""What only the ``greenlet`` kind does: a deterministic scheduler in the
caller's thread (FIFO order, seeds that hunt races), ``DeadlockError`` instead
of a hang, a virtual clock, killing tasks, and waits across OS threads."""

from __future__ import annotations

import gc
import re
import threading
import time
import weakref
from collections.abc import Callable
from concurrent.futures import CancelledError
from typing import Any

import pytest

import unifex
from unifex import _wait
from unifex._backends.greenlet import GreenletExecutor
from unifex._backends.greenlet.loop import _TaskGreenlet
from unifex.testing import tasks

pytestmark = pytest.mark.timeout(60)


def make(size: int | None = None, **options: Any) -> Any:
    return unifex.executor("greenlet", size=size, **options)


def live_task_greenlets() -> list[Any]:
    """Task greenlets that started and have not ended."""
    return [g for g in gc.get_objects() if isinstance(g, _TaskGreenlet) and not g.dead]


def stepper(log: list[Any], name: str, steps: int) -> str:
    for i in range(steps):
        log.append((name, i))
        unifex.sleep(0)
    return name


# -- order -----------------------------------------------------------------------------


def test_options_and_capabilities() -> None:
    with make() as ex:
        assert isinstance(ex, GreenletExecutor)
        assert ex.size == 100
        assert ex.seed is None and ex.clock == "real"
        assert {"cooperative", "deterministic", "kill_running"} <= ex.capabilities


@pytest.mark.parametrize(("options", "word"), [({"clock": "wall"}, "clock"), ({"seed": "abc"}, "seed"), ({"seed": 1.5}, "seed")])
def test_bad_options_are_refused(options: dict[str, Any], word: str) -> None:
    with pytest.raises(ValueError, match=word):
        make(**options)


def test_executors_of_one_thread_must_agree_on_seed_and_clock() -> None:
    with make(seed=1) as ex:
        with pytest.raises(ValueError, match="share one scheduler"):
            make(seed=2)
        with make(seed=1, size=3) as other:  # same options: fine, one shared scheduler
            a, b = ex.submit(tasks.square, 3), other.submit(tasks.square, 4)
            done, not_done = unifex.wait([a, b], timeout=5)
            assert not not_done and {f.result() for f in done} == {9, 16}
    with make(seed=2) as ex:  # the first one is closed: a new scheduler
        assert ex.seed == 2


def test_tasks_start_only_when_the_caller_waits() -> None:
    log: list[Any] = []
    with make() as ex:
        fut = ex.submit(stepper, log, "a", 1)
        assert log == [] and not fut.running()
        assert fut.result(timeout=5) == "a"
        assert log == [("a", 0)]


def test_fifo_order_and_slots() -> None:
    log: list[Any] = []
    with make(size=2) as ex:
        futs = [ex.submit(stepper, log, name, 3) for name in "abc"]
        assert [f.result(timeout=5) for f in futs] == ["a", "b", "c"]
    # a and b alternate at each sleep(0); c gets a slot when a ends
    assert log == [("a", 0), ("b", 0), ("a", 1), ("b", 1), ("a", 2), ("b", 2), ("c", 0), ("c", 1), ("c", 2)]


def test_a_woken_task_goes_to_the_back_of_the_queue() -> None:
    log: list[str] = []

    def waiter(ev: Any) -> None:
        log.append("A waits")
        ev.wait()
        log.append("A woke")

    def setter(ev: Any) -> None:
        log.append("B sets")
        ev.set()
        log.append("B after set")
        unifex.sleep(0)
        log.append("B ends")

    def other() -> None:
        log.append("C")
        unifex.sleep(0)
        log.append("C ends")

    with make() as ex:
        ev = ex.Event()
        unifex.wait([ex.submit(waiter, ev), ex.submit(setter, ev), ex.submit(other)], timeout=5)
    assert log == ["A waits", "B sets", "B after set", "C", "A woke", "B ends", "C ends"]


def pipeline(seed: int | None = None) -> list[Any]:
    """A small program with a queue, a lock and a semaphore; returns its event order."""
    log: list[Any] = []

    def producer(q: Any, n: int) -> None:
        for i in range(n):
            q.put(i)
            log.append(("put", i))
        q.put(None)
        q.put(None)

    def consumer(name: str, q: Any, lock: Any, sem: Any) -> None:
        while (item := q.get()) is not None:
            with sem, lock:
                log.append((name, item))
                unifex.sleep(0)

    with make(seed=seed) as ex:
        q, lock, sem = ex.Queue(2), ex.Lock(), ex.Semaphore(1)
        futs = [ex.submit(producer, q, 6), ex.submit(consumer, "x", q, lock, sem), ex.submit(consumer, "y", q, lock, sem)]
        for f in unifex.as_completed(futs, timeout=10):
            log.append(("done", futs.index(f)))
    return log


def test_the_same_program_gives_the_same_order_every_run() -> None:
    first = pipeline()
    assert all(pipeline() == first for _ in range(3))
    assert sorted(item for name, item in first if name in ("x", "y")) == list(range(6))


def test_a_seed_gives_another_order_the_same_on_every_run() -> None:
    fifo = pipeline()
    orders = {seed: pipeline(seed) for seed in range(8)}
    assert all(pipeline(seed) == order for seed, order in list(orders.items())[:3])
    distinct = {tuple(order) for order in orders.values()}
    assert len(distinct) > 1
    assert any(order != fifo for order in orders.values())


# -- hunting a race with seeds ----------------------------------------------------------


def pause_then_incr(shared: Any, pauses: int) -> int:
    for _ in range(pauses):
        unifex.sleep(0)
    return tasks.incr_unlocked(shared, "n", 1)


def pause_then_incr_locked(lock: Any, shared: Any, pauses: int) -> int:
    for _ in range(pauses):
        unifex.sleep(0)
    return tasks.incr_locked(lock, shared, "n", 1)


def final_count(seed: int | None, locked: bool) -> int:
    with make(seed=seed) as ex:
        shared, lock = ex.dict(n=0), ex.Lock()
        if locked:
            futs = [ex.submit(pause_then_incr_locked, lock, shared, p) for p in (0, 2)]
        else:
            futs = [ex.submit(pause_then_incr, shared, p) for p in (0, 2)]
        unifex.wait(futs, timeout=5)
        return int(shared["n"])


def test_seeds_find_a_lost_update_that_fifo_hides_and_a_lock_prevents() -> None:
    # FIFO order happens to run the two read-modify-writes one after the other
    assert final_count(None, locked=False) == 2
    lost = [seed for seed in range(30) if final_count(seed, locked=False) == 1]
    assert lost, "no seed in 0..29 interleaved the read-modify-writes"
    # the seed that found it finds it again: the bug can be replayed and debugged
    assert final_count(lost[0], locked=False) == 1
    assert all(final_count(seed, locked=True) == 2 for seed in range(30))


# -- deadlocks -------------------------------------------------------------------------


def test_waiting_on_a_task_that_waits_forever_raises_deadlock() -> None:
    with make() as ex:
        ev = ex.Event()
        fut = ex.submit(tasks.wait_event, ev, None)
        with pytest.raises(unifex.DeadlockError) as info:
            fut.result()
        message = str(info.value)
        assert "The caller waits on the result of task #1 wait_event(" in message
        assert re.search(r"task #1 wait_event\(<unifex_greenlet\.Event at 0x\w+ \(1 waiting\): unset>, None\) waits on <unifex_greenlet\.Event at", message)
        # nothing is lost: the program can still fix it
        ev.set()
        assert fut.result(timeout=5) is True


def lock_a_then_b(a: Any, b: Any) -> None:
    with a:
        unifex.sleep(0)
        with b:
            pass


def test_lock_order_inversion_names_both_tasks_and_the_holders() -> None:
    with make() as ex:
        a, b = ex.Lock(), ex.Lock()
        f1 = ex.submit(lock_a_then_b, a, b)
        f2 = ex.submit(lock_a_then_b, b, a)
        with pytest.raises(unifex.DeadlockError) as info:
            unifex.wait([f1, f2])
        message = str(info.value)
        assert "task #1 lock_a_then_b(" in message and "task #2 lock_a_then_b(" in message
        assert "waits on <locked unifex_greenlet.Lock object held by task #2 lock_a_then_b" in message
        assert "waits on <locked unifex_greenlet.Lock object held by task #1 lock_a_then_b" in message
        # close() finds the same deadlock: it stops both tasks and says so
        with pytest.raises(unifex.DeadlockError):
            ex.close()
    for f in (f1, f2):
        assert isinstance(f.exception(timeout=0), unifex.DeadlockError)
        assert "stopped by close()" in str(f.exception(timeout=0))
    assert live_task_greenlets() == []


def test_a_wait_with_a_timeout_ends_at_its_deadline_instead() -> None:
    with make() as ex:
        ev = ex.Event()
        fut = ex.submit(tasks.wait_event, ev, None)
        with pytest.raises(TimeoutError):
            fut.result(timeout=0.05)
        assert ex.Queue().empty()
        with pytest.raises(unifex.DeadlockError, match="Queue"):
            ex.Queue().get()
        ev.set()


def test_a_task_waiting_for_a_queued_task_without_a_free_slot_is_a_deadlock() -> None:
    def parent(ex: Any) -> int:
        return int(ex.submit(tasks.square, 3).result())

    with make(size=1) as ex:
        fut = ex.submit(parent, ex)
        with pytest.raises(unifex.DeadlockError, match=r"queued for a free slot \(size=1\)"):
            fut.result()
        ex.terminate()
    assert isinstance(fut.exception(timeout=0), unifex.TerminatedError)


def test_the_caller_waiting_on_its_own_event_with_no_task_is_a_deadlock() -> None:
    with make() as ex, pytest.raises(unifex.DeadlockError, match=r"The caller waits on <unifex_greenlet\.Event"):
        ex.Event().wait()


def test_a_wait_on_something_settled_by_another_thread_is_not_a_deadlock() -> None:
    outside: unifex.Future[int] = unifex.Future()  # no owner: foreign to the scheduler
    thread = threading.Timer(0.05, outside.set_result, (7,))

    def task() -> int:
        return outside.result() * 2  # parks this task; only the timer thread can settle it

    with make() as ex:
        fut = ex.submit(task)
        thread.start()
        try:
            assert fut.result() == 14  # no timeout, yet no DeadlockError: the wait is on a foreign future
        finally:
            thread.join(5)


# -- virtual time ----------------------------------------------------------------------


def test_virtual_clock_runs_hours_of_sleep_in_moments() -> None:
    start = time.monotonic()
    with make(size=1000, clock="virtual") as ex:
        t0 = ex.now()
        futs = [ex.submit(tasks.sleep_return, 60, i) for i in range(1000)]
        assert sum(f.result() for f in futs) == sum(range(1000))
        assert ex.now() - t0 == pytest.approx(60, abs=1e-6)
        unifex.sleep(3600)  # the caller sleeps virtually too
        assert ex.now() - t0 == pytest.approx(3660, abs=1e-6)
    assert time.monotonic() - start < 5


def timed_program(ex: Any, unit: float) -> list[str]:
    """Sleeps, a per-task timeout, a timed helper wait and a timed result wait;
    returns the order in which they happen."""
    log: list[str] = []

    def sleeper(name: str, units: float) -> None:
        unifex.sleep(units * unit)
        log.append(f"{name} woke")

    def waiter(ev: Any) -> None:
        log.append(f"waiter got {ev.wait(2.5 * unit)}")

    ev = ex.Event()
    futs = [ex.submit(sleeper, name, units) for name, units in [("five", 5), ("one", 1), ("four", 4), ("two", 2)]]
    futs.append(ex.submit(waiter, ev))
    ex.apply_async(tasks.sleep_return, (10 * unit,), timeout=3.5 * unit, error_callback=lambda exc: log.append(type(exc).__name__))
    slow = ex.submit(tasks.sleep_return, 4.5 * unit, "slow")
    try:
        slow.result(timeout=3 * unit)
    except TimeoutError:
        log.append("caller timed out")
    log.append(f"caller got {slow.result()}")
    unifex.wait(futs)
    return log


def test_virtual_time_keeps_the_order_of_events_of_real_time() -> None:
    with make(clock="real") as ex:
        real = timed_program(ex, 0.03)
    start = time.monotonic()
    with make(clock="virtual") as ex:
        virtual = timed_program(ex, 60)
    assert time.monotonic() - start < 2
    assert virtual == real
    assert virtual == [
        "one woke",
        "two woke",
        "waiter got False",
        "caller timed out",
        "TaskTimeoutError",
        "four woke",
        "caller got slow",
        "five woke",
    ]


def test_virtual_deadlines_of_map_and_wait_count_virtual_seconds() -> None:
    with make(size=1, clock="virtual") as ex:
        results = []
        with pytest.raises(TimeoutError):
            for value in ex.map(tasks.sleep_return, [30] * 5, range(5), timeout=100):
                results.append(value)
        assert results == [0, 1, 2]  # done at 30, 60, 90 virtual seconds; the 4th would end at 120
    with make(size=3, clock="virtual") as ex:
        futs = [ex.submit(tasks.sleep_return, s, s) for s in (40, 80, 120)]
        done, not_done = unifex.wait(futs, timeout=100)
        assert {f.result() for f in done} == {40, 80} and len(not_done) == 1


def test_virtual_clock_waits_in_real_time_for_other_threads() -> None:
    outside: unifex.Future[str] = unifex.Future()
    thread = threading.Timer(0.1, outside.set_result, ("late",))

    def task() -> str:
        return outside.result(timeout=30)  # would time out at once if the clock jumped

    with make(clock="virtual") as ex:
        fut = ex.submit(task)
        thread.start()
        try:
            assert fut.result(timeout=60) == "late"
        finally:
            thread.join(5)


# -- stopping tasks --------------------------------------------------------------------


def test_a_per_task_timeout_kills_the_greenlet_and_frees_its_slot() -> None:
    log: list[str] = []

    def slow() -> None:
        try:
            unifex.sleep(10)
        finally:
            log.append("finally ran")
            try:
                unifex.sleep(0)  # a killed task cannot park again
            except BaseException as exc:
                log.append(type(exc).__name__)
        log.append("never")

    with make(size=1) as ex:
        start = time.monotonic()
        fut = ex.apply_async(slow, timeout=0.05)
        after = ex.submit(tasks.square, 5)
        with pytest.raises(unifex.TaskTimeoutError, match=r"slow\(\) ran past its timeout of 0.05 s"):
            fut.result(timeout=5)
        assert after.result(timeout=5) == 25
        assert time.monotonic() - start < 2
    assert log == ["finally ran", "_Killed"]
    assert live_task_greenlets() == []


def test_a_task_killed_after_a_lock_was_handed_to_it_passes_the_lock_on() -> None:
    with make() as ex:
        lock = ex.Lock()
        lock.acquire()
        fut = ex.apply_async(lock.acquire, timeout=0.05)
        unifex.sleep(0)  # the task starts and parks on the lock
        time.sleep(0.1)  # its deadline passes while the scheduler is not running
        lock.release()  # handed to the waiting task, which has not resumed yet
        unifex.sleep(0)  # the scheduler sees the deadline first and kills it
        assert isinstance(fut.exception(timeout=5), unifex.TaskTimeoutError)
        assert not lock.locked()
        assert lock.acquire(timeout=1)


def test_terminate_kills_running_and_cancels_queued() -> None:
    with make(size=2) as ex:
        ev = ex.Event()
        running = [ex.submit(tasks.wait_event, ev, None) for _ in range(2)]
        queued = [ex.submit(tasks.square, i) for i in range(3)]
        unifex.sleep(0)
        assert all(f.running() for f in running)
        ex.terminate()
        for f in running:
            assert isinstance(f.exception(timeout=0), unifex.TerminatedError)
        for f in queued:
            assert f.cancelled()
            with pytest.raises(CancelledError):
                f.result(timeout=0)
        assert live_task_greenlets() == []
        with pytest.raises(unifex.ExecutorClosedError):
            ex.submit(tasks.square, 1)


def test_terminate_from_inside_a_task() -> None:
    log: list[str] = []

    def stopper(ex: Any) -> str:
        ex.terminate()
        log.append("stopper goes on until its next wait")
        unifex.sleep(0)
        log.append("never")
        return "never"

    with make() as ex:
        ev = ex.Event()
        other = ex.submit(tasks.wait_event, ev, None)
        fut = ex.submit(stopper, ex)
        assert isinstance(fut.exception(timeout=5), unifex.TerminatedError)
        assert isinstance(other.exception(timeout=5), unifex.TerminatedError)
    assert log == ["stopper goes on until its next wait"]
    assert live_task_greenlets() == []


def test_close_without_wait_still_runs_the_accepted_tasks() -> None:
    ex = make(size=2)
    futs = [ex.submit(tasks.sleep_return, 0.01, i) for i in range(6)]
    ex.close(wait=False)
    assert all(f.done() for f in futs)
    assert [f.result() for f in futs] == list(range(6))
    assert live_task_greenlets() == []


def test_no_greenlet_is_left_running_after_close() -> None:
    with make(size=50) as ex:
        q = ex.Queue()
        consumers = [ex.submit(tasks.queue_get_n, q, 2) for _ in range(20)]
        ex.submit(tasks.queue_put_range, q, 40)
        sleepers = [ex.submit(tasks.sleep_return, 0.01 * i, i) for i in range(10)]
        unifex.sleep(0)
        assert len(live_task_greenlets()) > 10
    assert all(f.done() for f in consumers + sleepers)
    assert live_task_greenlets() == []


def test_an_executor_dropped_without_close_releases_its_worker_greenlets() -> None:
    ex = make(size=5)
    assert [f.result(timeout=10) for f in [ex.submit(tasks.sleep_return, 0.001 * i, i) for i in range(8)]] == list(range(8))
    assert live_task_greenlets()  # idle workers, parked for the next task
    loop = ex._loop
    ref = weakref.ref(ex)
    del ex
    gc.collect()
    assert ref() is None
    assert loop.dead and loop not in _wait._local.contexts  # the scheduler left the thread
    assert live_task_greenlets() == []


def test_a_dropped_executor_ends_its_workers_only_when_the_last_executor_of_the_thread_goes() -> None:
    kept = make(size=2)
    dropped = make(size=2)
    assert dropped.submit(tasks.square, 3).result(timeout=10) == 9
    del dropped
    gc.collect()
    assert not kept._loop.dead  # the other executor still uses the scheduler and its workers
    assert kept.submit(tasks.square, 4).result(timeout=10) == 16
    kept.close()
    assert live_task_greenlets() == []


def test_close_inside_a_task_returns_and_the_executor_finishes_later() -> None:
    def closer(ex: Any) -> str:
        ex.close()  # cannot wait for itself
        return "closed"

    ex = make()
    fut = ex.submit(closer, ex)
    late = ex.submit(tasks.sleep_return, 0.01, "late")
    assert fut.result(timeout=5) == "closed"
    assert late.result(timeout=5) == "late"
    with pytest.raises(unifex.ExecutorClosedError):
        ex.submit(tasks.square, 2)
    ex.close()
    assert live_task_greenlets() == []


def test_keyboard_interrupt_in_a_task_reaches_the_caller() -> None:
    def interrupted() -> None:
        raise KeyboardInterrupt

    ex = make()
    other = ex.submit(tasks.sleep_return, 10)
    fut = ex.submit(interrupted)
    with pytest.raises(KeyboardInterrupt), ex:
        fut.result(timeout=5)
    # the context manager terminated the executor on KeyboardInterrupt
    assert isinstance(fut.exception(timeout=0), KeyboardInterrupt)
    assert isinstance(other.exception(timeout=0), unifex.TerminatedError)
    assert live_task_greenlets() == []


# -- other OS threads -----------------------------------------------------------------


def run_in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []

    def target() -> None:
        try:
            out.append(fn())
        except BaseException as exc:
            out.append(exc)

    thread = threading.Thread(target=target)
    thread.start()
    return thread, out


def test_a_greenlet_future_can_be_waited_on_from_another_thread() -> None:
    with make() as ex:
        fut = ex.submit(tasks.sleep_return, 0.02, "ok")
        thread, out = run_in_thread(lambda: fut.result(timeout=10))
        ex.close()  # the owner thread runs the task
        thread.join(10)
    assert out == ["ok"]


def test_a_thread_submits_greenlet_tasks_while_the_owner_waits_on_that_thread() -> None:
    with make() as gex, unifex.executor("thread", size=1) as tex:

        def in_thread() -> int:
            # submitted from another OS thread; the owner thread runs it while it waits below
            return int(gex.submit(tasks.square, 6).result(timeout=10))

        assert tex.submit(in_thread).result(timeout=10) == 36


def test_terminate_from_another_thread_fails_futures_at_once() -> None:
    with make() as ex:
        ev = ex.Event()
        fut = ex.submit(tasks.wait_event, ev, None)
        unifex.sleep(0)
        thread, out = run_in_thread(ex.terminate)
        thread.join(10)
        assert out == [None]
        assert isinstance(fut.exception(timeout=0), unifex.TerminatedError)
        unifex.sleep(0)  # the owner thread's next wait stops the greenlet
        assert live_task_greenlets() == []


def test_callbacks_run_in_the_owner_thread() -> None:
    seen: list[int] = []
    with make() as ex:
        ex.apply_async(tasks.sleep_return, (0.01, 1), callback=lambda _: seen.append(threading.get_ident()))
    assert seen == [threading.get_ident()]


def test_a_task_that_overruns_without_a_switch_point_loses_its_result() -> None:
    def busy() -> str:
        time.sleep(0.05)  # blocks the thread: nothing can stop it until it returns
        return "too late"

    with make() as ex:
        fut = ex.apply_async(busy, timeout=0.01)
        with pytest.raises(unifex.TaskTimeoutError, match="without reaching a unifex wait"):
            fut.result(timeout=5)


def test_a_greenlet_executor_made_after_a_gevent_one_lets_both_run() -> None:
    # the greenlet scheduler blocks through the wait context below it (gevent's), so the hub runs meanwhile
    with unifex.executor("gevent", size=2) as gex, make(size=2) as lex:
        a = gex.submit(tasks.sleep_return, 0.02, "gevent")
        b = lex.submit(tasks.sleep_return, 0.02, "greenlet")
        start = time.monotonic()
        done, not_done = unifex.wait([a, b], timeout=10)
        assert not not_done and {f.result() for f in done} == {"gevent", "greenlet"}
        nested = lex.submit(lambda: gex.submit(tasks.sleep_return, 0.02, "inner").result(timeout=10))
        assert nested.result(timeout=10) == "inner"
        assert time.monotonic() - start < 5


# -- a gevent executor in the same thread -------------------------------------------------


def in_own_thread(fn: Callable[[], Any], limit: float = 30.0) -> Any:
    """Run ``fn`` in a fresh thread (its own gevent hub) and fail instead of
    hanging when it does not finish within ``limit`` seconds."""
    out: list[Any] = []

    def body() -> None:
        import gevent

        try:
            out.append(("ok", fn()))
        except BaseException as exc:  # reported in the test thread below
            out.append(("error", exc))
        finally:
            gevent.get_hub().destroy(destroy_loop=True)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    thread.join(limit)
    assert not thread.is_alive(), f"hung for {limit} s"
    status, value = out[0]
    if status == "error":
        raise value
    return value


def both_ways(gex: Any, lex: Any) -> set[Any]:
    """Waits from the caller, from a greenlet task on a gevent future, from a
    gevent task on a greenlet future, and on helpers across the two."""
    a = gex.submit(tasks.sleep_return, 0.01, "gevent")
    b = lex.submit(tasks.sleep_return, 0.01, "greenlet")
    done, not_done = unifex.wait([a, b], timeout=10)
    assert not not_done
    results = {f.result() for f in done}
    into_gevent = lex.submit(lambda: gex.submit(tasks.sleep_return, 0.01, "gevent in greenlet").result(timeout=10))
    into_greenlet = gex.submit(lambda: lex.submit(tasks.sleep_return, 0.01, "greenlet in gevent").result(timeout=10))
    results |= {into_gevent.result(timeout=10), into_greenlet.result(timeout=10)}
    ev = lex.Event()
    waiter = gex.submit(tasks.wait_event_then, ev, "event", 10)
    lex.submit(tasks.set_event, ev).result(timeout=10)
    results.add(waiter.result(timeout=10))
    return results


EXPECTED = {"gevent", "greenlet", "gevent in greenlet", "greenlet in gevent", "event"}


def test_a_greenlet_executor_made_before_a_gevent_one_lets_both_run() -> None:
    def run() -> set[Any]:
        with make(size=2) as lex, unifex.executor("gevent", size=2) as gex:
            return both_ways(gex, lex)

    assert in_own_thread(run) == EXPECTED


def test_a_greenlet_executor_made_after_a_gevent_one_lets_both_run_every_way() -> None:
    def run() -> set[Any]:
        with unifex.executor("gevent", size=2) as gex, make(size=2) as lex:
            return both_ways(gex, lex)

    assert in_own_thread(run) == EXPECTED


def test_a_greenlet_executor_closed_before_the_gevent_one_and_after() -> None:
    def run() -> list[Any]:
        gex = unifex.executor("gevent", size=2)
        lex = make(size=2)
        first = [lex.submit(tasks.sleep_return, 0, 1).result(timeout=10), gex.submit(tasks.sleep_return, 0, 2).result(timeout=10)]
        lex.close()
        first.append(gex.submit(tasks.sleep_return, 0.01, 3).result(timeout=10))
        gex.close()
        lex2 = make(size=2)
        gex2 = unifex.executor("gevent", size=2)
        gex2.close()
        first.append(lex2.submit(tasks.sleep_return, 0.01, 4).result(timeout=10))
        lex2.close()
        return first

    assert in_own_thread(run) == [1, 2, 3, 4]


def test_a_greenlet_executor_made_inside_a_gevent_task_runs_its_tasks() -> None:
    def inside() -> list[Any]:
        log: list[Any] = []
        with make(size=3) as lex:
            futs = [lex.submit(stepper, log, name, 2) for name in "ab"]
            assert [f.result(timeout=10) for f in futs] == ["a", "b"]
            ev = lex.Event()
            lex.submit(tasks.set_event, ev)
            assert ev.wait(10)
        return log

    def run() -> list[Any]:
        with unifex.executor("gevent", size=2) as gex:
            first = gex.submit(inside)
            second = gex.submit(inside)  # two gevent tasks drive the one scheduler of the thread
            return [first.result(timeout=10), second.result(timeout=10)]

    fifo = [("a", 0), ("b", 0), ("a", 1), ("b", 1)]
    assert in_own_thread(run) == [fifo, fifo]
