"""SPEC 4: the same bad argument to a helper gets the same stdlib exception on
every kind: the one :mod:`threading` / :mod:`queue` raise for it. And every
helper satisfies its protocol (``unifex.LockLike``, ``unifex.QueueLike``, ...)."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import pytest

import unifex

#: (id, make the helper from a factory holder, the bad call); run on the stdlib
#: (``threading`` / ``queue``) and on the executor, the exception types must match
CASES: list[tuple[str, Callable[[Any], Any], Callable[[Any], object]]] = [
    ("Lock.acquire(False, 5)", lambda m: m.Lock(), lambda h: h.acquire(False, 5)),
    ("Lock.acquire(timeout=-2)", lambda m: m.Lock(), lambda h: h.acquire(timeout=-2)),
    ("Lock.acquire(timeout=1e100)", lambda m: m.Lock(), lambda h: h.acquire(timeout=1e100)),
    ("Lock.acquire(timeout=None)", lambda m: m.Lock(), lambda h: h.acquire(timeout=None)),
    ("Lock.release() unlocked", lambda m: m.Lock(), lambda h: h.release()),
    ("RLock.acquire(False, 5)", lambda m: m.RLock(), lambda h: h.acquire(False, 5)),
    ("RLock.acquire(timeout=-2)", lambda m: m.RLock(), lambda h: h.acquire(timeout=-2)),
    ("RLock.release() unowned", lambda m: m.RLock(), lambda h: h.release()),
    ("Semaphore(-1)", lambda m: m, lambda m: m.Semaphore(-1)),
    ("Semaphore('3')", lambda m: m, lambda m: m.Semaphore("3")),
    ("Semaphore.acquire(False, 1)", lambda m: m.Semaphore(1), lambda h: h.acquire(False, 1)),
    ("Semaphore.release(0)", lambda m: m.Semaphore(1), lambda h: h.release(0)),
    ("BoundedSemaphore(1).release()", lambda m: m.BoundedSemaphore(1), lambda h: h.release()),
    ("BoundedSemaphore(0).release()", lambda m: m.BoundedSemaphore(0), lambda h: h.release()),
    ("Event.wait('1')", lambda m: m.Event(), lambda h: h.wait("1")),
    ("Condition.wait() unowned", lambda m: m.Condition(), lambda h: h.wait(0.01)),
    ("Condition.notify() unowned", lambda m: m.Condition(), lambda h: h.notify()),
    ("Queue.put(timeout=-1)", lambda m: m.Queue(2), lambda h: h.put(1, timeout=-1)),
    ("Queue.get(True, -1)", lambda m: m.Queue(2), lambda h: h.get(True, -1)),
    ("Queue.get_nowait() empty", lambda m: m.Queue(2), lambda h: h.get_nowait()),
    ("Queue.get(timeout=0.01) empty", lambda m: m.Queue(2), lambda h: h.get(timeout=0.01)),
    ("Queue.task_done() too often", lambda m: m.Queue(2), lambda h: h.task_done()),
]


class _Stdlib:
    """The stdlib's helpers, spelled as an executor's factories."""

    Lock = staticmethod(threading.Lock)
    RLock = staticmethod(threading.RLock)
    Event = staticmethod(threading.Event)
    Semaphore = staticmethod(threading.Semaphore)
    BoundedSemaphore = staticmethod(threading.BoundedSemaphore)
    Condition = staticmethod(threading.Condition)
    Queue: Any = staticmethod(queue.Queue)


def _raised(call: Callable[[], object]) -> type[BaseException] | None:
    try:
        call()
    except Exception as exc:
        return type(exc)
    return None


@pytest.mark.parametrize(("make", "bad"), [pytest.param(m, b, id=i) for i, m, b in CASES])
def test_a_bad_argument_raises_what_the_stdlib_raises(ex: Any, make: Callable[[Any], Any], bad: Callable[[Any], object]) -> None:
    expected = _raised(lambda: bad(make(_Stdlib)))
    assert expected is not None, "the case must be an error in the stdlib too"
    with pytest.raises(expected):
        bad(make(ex))


@pytest.mark.parametrize("maxsize", ["3", 2.5, None])
def test_queue_maxsize_must_be_an_int(ex: Any, maxsize: object) -> None:
    # the stdlib takes any maxsize and fails later, at put, with "'>' not supported";
    # every kind refuses it at once, with the same TypeError
    with pytest.raises(TypeError, match="maxsize"):
        ex.Queue(maxsize)


def test_a_bounded_semaphore_of_zero_stays_at_zero(ex: Any) -> None:
    sem = ex.BoundedSemaphore(0)
    with pytest.raises(ValueError):
        sem.release()
    assert sem.acquire(False) is False


def test_helpers_satisfy_their_protocols(ex: Any) -> None:
    lock = ex.Lock()
    assert isinstance(lock, unifex.LockLike)
    assert isinstance(ex.RLock(), unifex.RLockLike)
    assert isinstance(ex.Event(), unifex.EventLike)
    assert isinstance(ex.Semaphore(2), unifex.SemaphoreLike)
    assert isinstance(ex.BoundedSemaphore(2), unifex.SemaphoreLike)
    assert isinstance(ex.Condition(), unifex.ConditionLike)
    assert isinstance(ex.Condition(lock), unifex.ConditionLike)
    assert isinstance(ex.Queue(), unifex.QueueLike)
    assert ex.Queue(3).maxsize == 3


def test_semaphore_takes_value_by_keyword_as_the_stdlib(ex: Any) -> None:
    sem = ex.Semaphore(value=2)
    assert sem.acquire(False) and sem.acquire(False)
    assert sem.acquire(False) is False
    bounded = ex.BoundedSemaphore(value=1)
    assert bounded.acquire(False)
    bounded.release()
