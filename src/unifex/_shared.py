"""Shared-state helpers: what every backend's helpers share, and the thread
helpers used by the ``thread``, ``pool`` and ``serial`` kinds.

The thread helpers are the :mod:`threading` and :mod:`queue` primitives with one
addition: inside a thread task that has a per-task ``timeout``, a blocking call
ends at the task's deadline with :class:`~unifex.TaskTimeoutError`.
"""

from __future__ import annotations

import queue
import threading
from _thread import allocate_lock
from collections.abc import Callable
from typing import Any

from . import _wait
from ._wait import _local, clamp, deadline_passed

__all__ = ["BoundedSemaphore", "Condition", "Event", "HELPER_NAMES", "Lock", "LockDelegate", "Queue", "RLock", "Semaphore", "wait_for"]

#: the helper factories every executor provides (section 4 of the contract)
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


def _bounded(timeout: float) -> tuple[float, bool]:
    """Bound a stdlib-style timeout (negative or None: forever) by the task deadline."""
    t, is_deadline = clamp(None if timeout is None or timeout < 0 else timeout)
    return (-1 if t is None else t), is_deadline


class _DeadlineLock:
    """A lock in ``_lock`` whose blocking acquire honours the task deadline."""

    __slots__ = ("_lock",)
    _lock: Any

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if self._lock.acquire(False):
            return True
        if not blocking:
            return False
        t, is_deadline = _bounded(timeout)
        if self._lock.acquire(True, t):
            return True
        if is_deadline:
            raise deadline_passed()
        return False

    def release(self) -> None:
        self._lock.release()

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class Lock(_DeadlineLock):
    """``threading.Lock`` whose blocking acquire honours the task deadline."""

    __slots__ = ()

    def __init__(self) -> None:
        self._lock = allocate_lock()

    def locked(self) -> bool:
        return bool(self._lock.locked())

    def __repr__(self) -> str:
        return f"<unifex.Lock {'locked' if self.locked() else 'unlocked'}>"


class RLock(_DeadlineLock):
    """``threading.RLock`` whose blocking acquire honours the task deadline."""

    __slots__ = ()

    def __init__(self) -> None:
        self._lock = threading.RLock()

    def __repr__(self) -> str:
        return "<unifex.RLock>"


class _DeadlineAcquire:
    """``acquire`` of a :mod:`threading` semaphore, bounded by the task deadline."""

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        acquire = super().acquire  # type: ignore[misc]
        if acquire(False):
            return True
        if not blocking:
            return False
        t, is_deadline = _bounded(-1 if timeout is None else timeout)
        if acquire(True, None if t < 0 else t):
            return True
        if is_deadline:
            raise deadline_passed()
        return False

    __enter__ = acquire


class Semaphore(_DeadlineAcquire, threading.Semaphore):
    pass


class BoundedSemaphore(_DeadlineAcquire, threading.BoundedSemaphore):
    pass


class Event(threading.Event):
    def wait(self, timeout: float | None = None) -> bool:
        if self.is_set():
            return True
        t, is_deadline = _bounded(-1 if timeout is None else timeout)
        if super().wait(None if t < 0 else t):
            return True
        if is_deadline:
            raise deadline_passed()
        return False


class Condition(threading.Condition):
    def __init__(self, lock: Any = None) -> None:
        # unwrap our own locks: threading.Condition uses the raw lock's internals
        if isinstance(lock, (Lock, RLock)):
            lock = lock._lock
        super().__init__(lock)

    def wait(self, timeout: float | None = None) -> bool:
        t, is_deadline = _bounded(-1 if timeout is None else timeout)
        if super().wait(None if t < 0 else t):
            return True
        if is_deadline:
            raise deadline_passed()
        return False


class Queue(queue.Queue):  # type: ignore[type-arg]
    """``queue.Queue`` (with ``task_done``/``join``) honouring the task deadline."""

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if _local.deadline is None:  # not inside a timed task: the stdlib call as it is
            return super().get(block, timeout)
        if not block:
            return super().get(False)
        t, is_deadline = _bounded(-1 if timeout is None else timeout)
        try:
            return super().get(True, None if t < 0 else t)
        except queue.Empty:
            if is_deadline:
                raise deadline_passed() from None
            raise

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        if _local.deadline is None:
            return super().put(item, block, timeout)
        if not block:
            return super().put(item, False)
        t, is_deadline = _bounded(-1 if timeout is None else timeout)
        try:
            super().put(item, True, None if t < 0 else t)
        except queue.Full:
            if is_deadline:
                raise deadline_passed() from None
            raise
