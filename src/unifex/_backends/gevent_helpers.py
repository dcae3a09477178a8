"""The helpers of the ``gevent`` kind: the stdlib's ``threading``/``queue``
spelling over :mod:`gevent.lock`, :mod:`gevent.event` and :mod:`gevent.queue`
(each blocking call yields to the hub), and ``Condition`` built on them."""

from __future__ import annotations

import queue as _stdlib_queue
from collections import deque
from collections.abc import Callable
from typing import Any, Generic, TypeVar

import gevent
import gevent.event
import gevent.local
import gevent.lock
import gevent.pool
import gevent.queue

from .._helpers import (
    Held,
    bounded_call,
    bounded_wait,
    lock_timeout,
    queue_maxsize,
    queue_timeout,
    release_count,
    semaphore_timeout,
    semaphore_value,
    take,
    wait_timeout,
)
from .._shared import wait_for

__all__ = ["BoundedSemaphore", "Condition", "Event", "Lock", "Queue", "RLock", "Semaphore"]

T = TypeVar("T")


# -- helpers: stdlib spelling over gevent primitives ----------------------------------
# Arguments are checked by unifex._helpers.args and blocking waits go through
# bounded_wait, as on every kind; gevent's own timeouts are in seconds or None.


class Lock(Held):
    """``threading.Lock`` on a gevent semaphore: a blocking acquire yields to the hub."""

    __slots__ = ("__weakref__", "_sem")

    def __init__(self) -> None:
        self._sem = gevent.lock.Semaphore(1)

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return take(self._sem.acquire, lock_timeout(blocking, timeout))

    def release(self) -> None:
        if not self._sem.locked():
            raise RuntimeError("release unlocked lock")
        self._sem.release()

    def locked(self) -> bool:
        return bool(self._sem.locked())

    # what Condition needs from its lock
    def _is_owned(self) -> bool:
        return bool(self._sem.locked())

    def _release_save(self) -> None:
        self.release()

    def _acquire_restore(self, _state: object) -> None:
        self.acquire()

    def _at_fork_reinit(self) -> None:
        self._sem = gevent.lock.Semaphore(1)

    def __repr__(self) -> str:
        return f"<{'locked' if self.locked() else 'unlocked'} unifex_gevent.Lock object at {id(self):#x}>"


class RLock(Held):
    """``threading.RLock`` on ``gevent.lock.RLock``: owned by a greenlet."""

    __slots__ = ("__weakref__", "_lock")

    def __init__(self) -> None:
        self._lock = gevent.lock.RLock()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return take(self._lock.acquire, lock_timeout(blocking, timeout))

    def release(self) -> None:
        if not self._lock._is_owned():
            raise RuntimeError("cannot release un-acquired lock")
        self._lock.release()

    def _is_owned(self) -> bool:
        return bool(self._lock._is_owned())

    def _release_save(self) -> Any:
        if not self._lock._is_owned():
            raise RuntimeError("cannot release un-acquired lock")
        return self._lock._release_save()

    def _acquire_restore(self, state: Any) -> None:
        self._lock._acquire_restore(state)

    def _recursion_count(self) -> int:
        return int(self._lock._count) if self._lock._is_owned() else 0

    def _at_fork_reinit(self) -> None:
        self._lock = gevent.lock.RLock()

    def __repr__(self) -> str:
        owned = self._lock._owner is not None
        return f"<{'locked' if owned else 'unlocked'} unifex_gevent.RLock object count={self._lock._count} at {id(self):#x}>"


class Semaphore(Held):
    """``threading.Semaphore`` on ``gevent.lock.Semaphore``."""

    __slots__ = ("__weakref__", "_sem", "_value")

    def __init__(self, value: int = 1) -> None:
        self._value = semaphore_value(value)
        self._sem = self._make(value)

    @staticmethod
    def _make(value: int) -> Any:
        return gevent.lock.Semaphore(value)

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return take(self._sem.acquire, semaphore_timeout(blocking, timeout))

    def release(self, n: int = 1) -> None:
        for _ in range(release_count(n)):
            self._sem.release()

    def __repr__(self) -> str:
        return f"<unifex_gevent.Semaphore at {id(self):#x}: value={self._sem.counter}>"


class BoundedSemaphore(Semaphore):
    """``threading.BoundedSemaphore``: releasing past the initial value raises ``ValueError``."""

    __slots__ = ()

    @staticmethod
    def _make(value: int) -> Any:
        return gevent.lock.BoundedSemaphore(value)

    def release(self, n: int = 1) -> None:
        n = release_count(n)
        if self._sem.counter + n > self._value:
            raise ValueError("Semaphore released too many times")
        for _ in range(n):
            self._sem.release()

    def __repr__(self) -> str:
        return f"<unifex_gevent.BoundedSemaphore at {id(self):#x}: value={self._sem.counter}/{self._value}>"


class Event:
    """``threading.Event`` on ``gevent.event.Event``."""

    __slots__ = ("__weakref__", "_event")

    def __init__(self) -> None:
        self._event = gevent.event.Event()

    def is_set(self) -> bool:
        return bool(self._event.is_set())

    isSet = is_set

    def set(self) -> None:
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        seconds = wait_timeout(timeout)
        if self._event.is_set():
            return True
        return bounded_wait(self._event.wait, seconds)

    def __repr__(self) -> str:
        return f"<unifex_gevent.Event at {id(self):#x}: {'set' if self.is_set() else 'unset'}>"


class Condition:
    """``threading.Condition`` whose waits yield to the hub (each waiter parks on a
    ``gevent.event.Event``)."""

    def __init__(self, lock: Any = None) -> None:
        self._lock = RLock() if lock is None else lock
        self.acquire = self._lock.acquire
        self.release = self._lock.release
        self._waiters: deque[Any] = deque()

    def __enter__(self) -> Any:
        return self._lock.__enter__()

    def __exit__(self, *exc: object) -> Any:
        return self._lock.__exit__(*exc)

    def __repr__(self) -> str:
        return f"<unifex_gevent.Condition({self._lock!r}, {len(self._waiters)} waiting)>"

    def _is_owned(self) -> bool:
        check = getattr(self._lock, "_is_owned", None)
        if check is not None:
            return bool(check())
        if self._lock.acquire(False):  # the stdlib's guess for locks without owners
            self._lock.release()
            return False
        return True

    def _release_save(self) -> Any:
        save = getattr(self._lock, "_release_save", None)
        if save is not None:
            return save()
        self._lock.release()
        return None

    def _acquire_restore(self, state: Any) -> None:
        restore = getattr(self._lock, "_acquire_restore", None)
        if restore is not None:
            restore(state)
        else:
            self._lock.acquire()

    def wait(self, timeout: float | None = None) -> bool:
        seconds = wait_timeout(timeout)
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        event = gevent.event.Event()
        self._waiters.append(event)
        state = self._release_save()
        notified = False
        try:
            notified = bounded_wait(event.wait, seconds)
            return notified
        finally:
            self._acquire_restore(state)
            if not notified:
                try:
                    self._waiters.remove(event)
                except ValueError:
                    pass

    def wait_for(self, predicate: Callable[[], T], timeout: float | None = None) -> T:
        return wait_for(self, predicate, timeout)  # type: ignore[no-any-return]

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        waiters = self._waiters
        while waiters and n > 0:
            waiters.popleft().set()
            n -= 1

    def notify_all(self) -> None:
        self.notify(len(self._waiters))


class Queue(Generic[T]):
    """``queue.Queue`` on ``gevent.queue.JoinableQueue`` (which raises the
    stdlib's ``queue.Empty`` / ``queue.Full``)."""

    __slots__ = ("__weakref__", "_q")

    def __init__(self, maxsize: int = 0) -> None:
        self._q = gevent.queue.JoinableQueue(queue_maxsize(maxsize) or None)

    @property
    def maxsize(self) -> int:
        return int(self._q.maxsize or 0)

    @maxsize.setter
    def maxsize(self, value: int) -> None:
        self._q.maxsize = queue_maxsize(value) or None

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        seconds = queue_timeout(block, timeout)
        if not block:
            return self._q.put(item, False)  # type: ignore[no-any-return]
        return bounded_call(lambda s: self._q.put(item, True, s), seconds, _stdlib_queue.Full)  # type: ignore[no-any-return]

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        seconds = queue_timeout(block, timeout)
        if not block:
            return self._q.get(False)  # type: ignore[no-any-return]
        return bounded_call(lambda s: self._q.get(True, s), seconds, _stdlib_queue.Empty)  # type: ignore[no-any-return]

    def put_nowait(self, item: T) -> None:
        self.put(item, False)

    def get_nowait(self) -> T:
        return self.get(False)

    def qsize(self) -> int:
        return int(self._q.qsize())

    def empty(self) -> bool:
        return bool(self._q.empty())

    def full(self) -> bool:
        return bool(self._q.full())

    def task_done(self) -> None:
        self._q.task_done()

    def join(self, timeout: float | None = None) -> None:
        bounded_wait(self._q.join, wait_timeout(timeout))

    def __repr__(self) -> str:
        return f"<unifex_gevent.Queue at {id(self):#x} maxsize={self.maxsize} qsize={self.qsize()}>"
