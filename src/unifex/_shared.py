"""The thread helpers of the ``thread``, ``pool`` and ``serial`` kinds, and
``wait_for`` / ``LockDelegate`` that other kinds' helpers reuse.

The thread helpers are the :mod:`threading` and :mod:`queue` primitives with one
addition: inside a thread task that has a per-task ``timeout``, a blocking call
ends at the task's deadline with :class:`~unifex.TaskTimeoutError`
(:func:`unifex._helpers.bounded_wait`). Arguments are checked by
:mod:`unifex._helpers.args`, as on every kind.
"""

from __future__ import annotations

import queue
import threading
from _thread import allocate_lock
from collections.abc import Callable
from typing import Any, TypeVar

from . import _wait
from ._helpers import (
    bounded_call,
    bounded_wait,
    lock_timeout,
    queue_maxsize,
    queue_timeout,
    semaphore_timeout,
    semaphore_value,
    take,
    wait_timeout,
)
from ._wait import _local

__all__ = ["BoundedSemaphore", "Condition", "Event", "HELPER_NAMES", "Lock", "LockDelegate", "Queue", "RLock", "Semaphore", "wait_for"]

#: the helper factories every executor provides (section 4 of the contract)
T = TypeVar("T")

HELPER_NAMES = ("Lock", "RLock", "Event", "Semaphore", "BoundedSemaphore", "Condition", "Queue", "dict")


def wait_for(cond: Any, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
    """``Condition.wait_for`` for any backend's condition: call ``cond.wait``
    until ``predicate()`` is true or ``timeout`` seconds (of the wait context's
    clock: virtual under ``greenlet`` with ``clock="virtual"``) have passed."""
    end = None if timeout is None else _wait.now() + timeout
    result = predicate()
    while not result:
        remaining = None
        if end is not None:
            remaining = end - _wait.now()
            if remaining <= 0:
                break
        cond.wait(remaining)
        result = predicate()
    return result


class LockDelegate:
    """The lock protocol of a condition, handed to the lock it holds in ``_lock``."""

    __slots__ = ()
    _lock: Any

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        return bool(self._lock.acquire(blocking, timeout))

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> bool:
        return bool(self._lock.acquire())

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class _RawLock:
    """A :mod:`_thread` lock in ``_lock`` whose blocking acquire honours the task deadline."""

    __slots__ = ("__weakref__", "_lock")
    _lock: Any

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if timeout == -1 and _local.deadline is None:  # the common call: the raw lock as it is
            return bool(self._lock.acquire(blocking))
        return take(self._lock.acquire, lock_timeout(blocking, timeout), -1)

    __enter__ = acquire

    def release(self) -> None:
        self._lock.release()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def _at_fork_reinit(self) -> None:
        self._lock._at_fork_reinit()


class Lock(_RawLock):
    """``threading.Lock`` whose blocking acquire honours the task deadline."""

    __slots__ = ()

    def __init__(self) -> None:
        self._lock = allocate_lock()

    def locked(self) -> bool:
        return bool(self._lock.locked())

    def __repr__(self) -> str:
        return f"<{'locked' if self.locked() else 'unlocked'} unifex.Lock object at {id(self):#x}>"


class RLock(_RawLock):
    """``threading.RLock`` whose blocking acquire honours the task deadline."""

    __slots__ = ()

    def __init__(self) -> None:
        self._lock = threading.RLock()

    # what threading.Condition (and CPython's lock tests) use
    def _is_owned(self) -> bool:
        return bool(self._lock._is_owned())

    def _release_save(self) -> Any:
        return self._lock._release_save()

    def _acquire_restore(self, state: Any) -> None:
        self._lock._acquire_restore(state)

    def _recursion_count(self) -> int:
        return int(self._lock._recursion_count())

    def __repr__(self) -> str:
        raw = repr(self._lock)  # <unlocked _thread.RLock object owner=0 count=0 at 0x...>
        state, _, rest = raw[1:].partition(" _thread.RLock object ")
        return f"<{state} unifex.RLock object {rest.rsplit(' at ', 1)[0]} at {id(self):#x}>"


class _DeadlineAcquire:
    """``acquire`` of a :mod:`threading` semaphore: arguments checked as on every
    kind, a blocking acquire bounded by the task deadline."""

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return take(super().acquire, semaphore_timeout(blocking, timeout))  # type: ignore[misc]

    __enter__ = acquire


class Semaphore(_DeadlineAcquire, threading.Semaphore):
    def __init__(self, value: int = 1) -> None:
        super().__init__(semaphore_value(value))

    def __repr__(self) -> str:
        return f"<unifex.Semaphore at {id(self):#x}: value={self._value}>"  # type: ignore[attr-defined]


class BoundedSemaphore(_DeadlineAcquire, threading.BoundedSemaphore):
    def __init__(self, value: int = 1) -> None:
        super().__init__(semaphore_value(value))

    def __repr__(self) -> str:
        return f"<unifex.BoundedSemaphore at {id(self):#x}: value={self._value}/{self._initial_value}>"  # type: ignore[attr-defined]


class Event(threading.Event):
    def wait(self, timeout: float | None = None) -> bool:
        seconds = wait_timeout(timeout)
        if self.is_set():
            return True
        return bounded_wait(super().wait, seconds)

    def __repr__(self) -> str:
        return f"<unifex.Event at {id(self):#x}: {'set' if self.is_set() else 'unset'}>"


class Condition(threading.Condition):
    def __init__(self, lock: Any = None) -> None:
        # unwrap our own locks: threading.Condition uses the raw lock's internals
        if isinstance(lock, (Lock, RLock)):
            lock = lock._lock
        super().__init__(lock)

    def wait(self, timeout: float | None = None) -> bool:
        return bounded_wait(super().wait, wait_timeout(timeout))


class Queue(queue.Queue[T]):
    """``queue.Queue`` (with ``task_done``/``join``) honouring the task deadline."""

    def __init__(self, maxsize: int = 0) -> None:
        super().__init__(queue_maxsize(maxsize))

    def get(self, block: bool = True, timeout: float | None = None) -> T:
        seconds = queue_timeout(block, timeout)
        if not block:
            return super().get(False)
        return bounded_call(lambda s: super(Queue, self).get(True, s), seconds, queue.Empty)

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None:
        seconds = queue_timeout(block, timeout)
        if not block:
            return super().put(item, False)
        return bounded_call(lambda s: super(Queue, self).put(item, True, s), seconds, queue.Full)
