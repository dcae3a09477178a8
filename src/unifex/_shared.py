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
from typing import Any

from ._wait import _local, clamp, deadline_passed

__all__ = ["BoundedSemaphore", "Condition", "Event", "Lock", "Queue", "RLock", "Semaphore", "HELPER_NAMES"]

#: the helper factories every executor provides (section 4 of the contract)
HELPER_NAMES = ("Lock", "RLock", "Event", "Semaphore", "BoundedSemaphore", "Condition", "Queue", "dict")


def _bounded(timeout: float) -> tuple[float, bool]:
    """Bound a stdlib-style timeout (negative or None: forever) by the task deadline."""
    t, is_deadline = clamp(None if timeout is None or timeout < 0 else timeout)
    return (-1 if t is None else t), is_deadline


class Lock:
    """``threading.Lock`` whose blocking acquire honours the task deadline."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = allocate_lock()

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

    def locked(self) -> bool:
        return self._lock.locked()

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self._lock.release()

    def __repr__(self) -> str:
        return f"<unifex.Lock {'locked' if self.locked() else 'unlocked'}>"


class RLock:
    """``threading.RLock`` whose blocking acquire honours the task deadline."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = threading.RLock()

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

    def __repr__(self) -> str:
        return "<unifex.RLock>"


class Semaphore(threading.Semaphore):
    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if super().acquire(False):
            return True
        if not blocking:
            return False
        t, is_deadline = _bounded(-1 if timeout is None else timeout)
        if super().acquire(True, None if t < 0 else t):
            return True
        if is_deadline:
            raise deadline_passed()
        return False

    __enter__ = acquire


class BoundedSemaphore(threading.BoundedSemaphore):
    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if super().acquire(False):
            return True
        if not blocking:
            return False
        t, is_deadline = _bounded(-1 if timeout is None else timeout)
        if super().acquire(True, None if t < 0 else t):
            return True
        if is_deadline:
            raise deadline_passed()
        return False

    __enter__ = acquire


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
