"""The ``greenlet`` kind's helpers (``Lock``, ``RLock``, ``Semaphore``,
``Event``, ``Condition``, ``Queue``) on the thread's scheduler."""

from __future__ import annotations

import queue as _stdqueue
from _thread import allocate_lock
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ... import _wait
from ..._helpers import Held, lock_timeout, queue_maxsize, queue_timeout, release_count, semaphore_timeout, semaphore_value, wait_timeout
from ..._shared import wait_for
from .loop import _describe_holder, _me

if TYPE_CHECKING:
    from .executor import GreenletExecutor

__all__ = [
    "GreenletBoundedSemaphore",
    "GreenletCondition",
    "GreenletEvent",
    "GreenletLock",
    "GreenletQueue",
    "GreenletRLock",
    "GreenletSemaphore",
]

# Each helper keeps FIFO waiter entries and hands what it guards (a lock, a
# permit, an item) directly to the first waiter, so the order is deterministic
# and no woken waiter finds its prize taken. A tiny mutex makes each operation
# atomic for other OS threads too; it is never held across a wait.


class _Entry:
    __slots__ = ("granted", "item", "waiter", "who")

    def __init__(self, waiter: _wait.Waiter, item: Any = None) -> None:
        self.waiter = waiter
        self.granted = False
        self.item = item
        self.who: Any = None


def _block(mutex: Any, entries: deque[_Entry], entry: _Entry, timeout: float | None, abandon: Callable[[_Entry], None]) -> bool:
    """Wait for ``entry`` to be granted; on timeout withdraw it. If the wait
    is interrupted (a kill, a deadline) after the grant, pass the grant on."""
    try:
        ok = entry.waiter.wait(timeout)
    except BaseException:
        with mutex:
            granted = entry.granted
            if not granted:
                entries.remove(entry)
        if granted:
            abandon(entry)
        raise
    if ok:
        return True
    with mutex:
        if entry.granted:
            return True
        entries.remove(entry)
        return False


class _Helper:
    __slots__ = ("__weakref__", "_mutex", "_owner")

    def __init__(self, owner: GreenletExecutor) -> None:
        self._mutex = allocate_lock()
        self._owner = owner

    def __reduce__(self) -> Any:
        raise TypeError(f"{self!r} works only inside its own process and thread; it cannot be pickled")


class GreenletLock(Held, _Helper):
    """``threading.Lock`` on the scheduler: a blocking acquire parks the task."""

    __slots__ = ("_holder", "_locked", "_waiters")

    def __init__(self, owner: GreenletExecutor) -> None:
        super().__init__(owner)
        self._locked = False
        self._holder: Any = None
        self._waiters: deque[_Entry] = deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        wait_for = lock_timeout(blocking, timeout)
        with self._mutex:
            if not self._locked:
                self._locked = True
                self._holder = _me()
                return True
            if not blocking:
                return False
            entry = _Entry(_wait.current().waiter(self))
            entry.who = _me()
            self._waiters.append(entry)
        return _block(self._mutex, self._waiters, entry, wait_for, self._abandon)

    def _abandon(self, entry: _Entry) -> None:
        self.release()

    def release(self) -> None:
        with self._mutex:
            if not self._locked:
                raise RuntimeError("release unlocked lock")
            if not self._waiters:
                self._locked = False
                self._holder = None
                return
            entry = self._waiters.popleft()
            entry.granted = True
            self._holder = entry.who
        entry.waiter.notify()

    def locked(self) -> bool:
        return self._locked

    __enter__ = acquire

    # for GreenletCondition
    def _is_owned(self) -> bool:
        return self._locked and self._holder is _me()

    def _release_save(self) -> None:
        self.release()

    def _acquire_restore(self, state: None) -> None:
        self.acquire()

    def _at_fork_reinit(self) -> None:
        self._locked = False
        self._holder = None
        self._waiters.clear()

    def __repr__(self) -> str:
        if not self._locked:
            return f"<unlocked unifex_greenlet.Lock object at {id(self):#x}>"
        waiting = f", {len(self._waiters)} waiting" if self._waiters else ""
        return f"<locked unifex_greenlet.Lock object held by {_describe_holder(self._holder)}{waiting} at {id(self):#x}>"


class GreenletRLock(Held, _Helper):
    """``threading.RLock`` on the scheduler; the owner is the task (greenlet)."""

    __slots__ = ("_count", "_holder", "_waiters")

    def __init__(self, owner: GreenletExecutor) -> None:
        super().__init__(owner)
        self._holder: Any = None
        self._count = 0
        self._waiters: deque[_Entry] = deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        wait_for = lock_timeout(blocking, timeout)
        me = _me()
        with self._mutex:
            if self._holder is None:
                self._holder = me
                self._count = 1
                return True
            if self._holder is me:
                self._count += 1
                return True
            if not blocking:
                return False
            entry = _Entry(_wait.current().waiter(self))
            entry.who = me
            self._waiters.append(entry)
        return _block(self._mutex, self._waiters, entry, wait_for, self._abandon)

    def _abandon(self, entry: _Entry) -> None:
        self._release_all()

    def release(self) -> None:
        with self._mutex:
            if self._holder is not _me():
                raise RuntimeError("cannot release un-acquired lock")
            self._count -= 1
            if self._count:
                return
            entry = self._hand_over()
        if entry is not None:
            entry.waiter.notify()

    def _hand_over(self) -> _Entry | None:
        if not self._waiters:
            self._holder = None
            return None
        entry = self._waiters.popleft()
        entry.granted = True
        self._holder = entry.who
        self._count = 1
        return entry

    def _release_all(self) -> int:
        with self._mutex:
            count = self._count
            self._count = 0
            entry = self._hand_over()
        if entry is not None:
            entry.waiter.notify()
        return count

    __enter__ = acquire

    def _is_owned(self) -> bool:
        return self._holder is _me()

    def _release_save(self) -> int:
        if self._holder is not _me():
            raise RuntimeError("cannot release un-acquired lock")
        return self._release_all()

    def _acquire_restore(self, count: int) -> None:
        self.acquire()
        self._count = count

    def _recursion_count(self) -> int:
        return self._count if self._holder is _me() else 0

    def __repr__(self) -> str:
        if self._holder is None:
            return f"<unlocked unifex_greenlet.RLock object at {id(self):#x}>"
        waiting = f", {len(self._waiters)} waiting" if self._waiters else ""
        return f"<locked unifex_greenlet.RLock object held by {_describe_holder(self._holder)} (depth {self._count}){waiting} at {id(self):#x}>"


class GreenletSemaphore(Held, _Helper):
    """``threading.Semaphore`` on the scheduler."""

    __slots__ = ("_initial", "_value", "_waiters")

    def __init__(self, owner: GreenletExecutor, value: int = 1) -> None:
        value = semaphore_value(value)
        super().__init__(owner)
        self._value = value
        self._initial = value
        self._waiters: deque[_Entry] = deque()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        timeout = semaphore_timeout(blocking, timeout)
        with self._mutex:
            if self._value > 0:
                self._value -= 1
                return True
            if not blocking:
                return False
            entry = _Entry(_wait.current().waiter(self))
            self._waiters.append(entry)
        return _block(self._mutex, self._waiters, entry, timeout, self._abandon)

    def _abandon(self, entry: _Entry) -> None:
        self.release()

    def _check_release(self, n: int) -> None:
        pass

    def release(self, n: int = 1) -> None:
        n = release_count(n)
        granted = []
        with self._mutex:
            self._check_release(n)
            waiters = self._waiters
            while n and waiters:
                entry = waiters.popleft()
                entry.granted = True
                granted.append(entry)
                n -= 1
            self._value += n
        for entry in granted:
            entry.waiter.notify()

    __enter__ = acquire

    def _value_text(self) -> str:
        return str(self._value)

    def __repr__(self) -> str:
        waiting = f", {len(self._waiters)} waiting" if self._waiters else ""
        return f"<unifex_greenlet.{type(self).__name__[8:]} at {id(self):#x}: value={self._value_text()}{waiting}>"


class GreenletBoundedSemaphore(GreenletSemaphore):
    """``threading.BoundedSemaphore``: releasing above the initial value raises ``ValueError``."""

    __slots__ = ()

    def _check_release(self, n: int) -> None:
        if self._value + n > self._initial:
            raise ValueError(f"Semaphore released too many times (initial value {self._initial})")

    def _value_text(self) -> str:
        return f"{self._value}/{self._initial}"


class GreenletEvent(_Helper):
    """``threading.Event`` on the scheduler."""

    __slots__ = ("_flag", "_waiters")

    def __init__(self, owner: GreenletExecutor) -> None:
        super().__init__(owner)
        self._flag = False
        self._waiters: list[_wait.Waiter] = []

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set

    def set(self) -> None:
        with self._mutex:
            self._flag = True
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.notify()

    def clear(self) -> None:
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        timeout = wait_timeout(timeout)
        with self._mutex:
            if self._flag:
                return True
            waiter = _wait.current().waiter(self)
            self._waiters.append(waiter)
        try:
            ok = waiter.wait(timeout)
        finally:
            if not _waiter_notified(waiter):
                with self._mutex:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
        return ok or self._flag

    def __repr__(self) -> str:
        waiting = f" ({len(self._waiters)} waiting)" if self._waiters else ""
        return f"<unifex_greenlet.Event at {id(self):#x}{waiting}: {'set' if self._flag else 'unset'}>"


def _waiter_notified(waiter: _wait.Waiter) -> bool:
    """Whether a waiter was notified; unknown kinds (plain threads) count as not."""
    return bool(getattr(waiter, "notified", False))


class GreenletCondition(_Helper):
    """``threading.Condition`` on the scheduler; the default lock is a :class:`GreenletRLock`."""

    __slots__ = ("_lock", "_waiters", "acquire", "release")

    def __init__(self, owner: GreenletExecutor, lock: Any = None) -> None:
        super().__init__(owner)
        if lock is None:
            lock = GreenletRLock(owner)
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release
        self._waiters: deque[_wait.Waiter] = deque()

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)

    def _is_owned(self) -> bool:
        lock = self._lock
        if hasattr(lock, "_is_owned"):
            return bool(lock._is_owned())
        if lock.acquire(False):
            lock.release()
            return False
        return True

    def _release_save(self) -> Any:
        lock = self._lock
        if hasattr(lock, "_release_save"):
            return lock._release_save()
        lock.release()
        return None

    def _acquire_restore(self, state: Any) -> None:
        lock = self._lock
        if hasattr(lock, "_acquire_restore"):
            lock._acquire_restore(state)
        else:
            lock.acquire()

    def wait(self, timeout: float | None = None) -> bool:
        timeout = wait_timeout(timeout)
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = _wait.current().waiter(self)
        with self._mutex:
            self._waiters.append(waiter)
        saved = self._release_save()
        ok = False
        try:
            ok = waiter.wait(timeout)
            return ok
        finally:
            if not ok:
                with self._mutex:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
            self._acquire_restore(saved)

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        return wait_for(self, predicate, timeout)

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        with self._mutex:
            woken = [self._waiters.popleft() for _ in range(min(n, len(self._waiters)))]
        for waiter in woken:
            waiter.notify()

    def notify_all(self) -> None:
        self.notify(len(self._waiters))

    notifyAll = notify_all

    def __repr__(self) -> str:
        return f"<unifex_greenlet.Condition on {self._lock!r} ({len(self._waiters)} waiting)>"


class Queue(_Helper):
    """``queue.Queue`` on the scheduler, with ``task_done``/``join``; raises
    ``queue.Empty`` and ``queue.Full`` as the stdlib does. (Named ``Queue``
    as the stdlib's, which code keyed by class name expects.)"""

    __slots__ = ("_getters", "_items", "_joiners", "_putters", "maxsize", "unfinished_tasks")

    def __init__(self, owner: GreenletExecutor, maxsize: int = 0) -> None:
        super().__init__(owner)
        self.maxsize = queue_maxsize(maxsize)
        self._items: deque[Any] = deque()
        self._getters: deque[_Entry] = deque()
        self._putters: deque[_Entry] = deque()
        self._joiners: list[_wait.Waiter] = []
        self.unfinished_tasks = 0

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        timeout = queue_timeout(block, timeout)
        with self._mutex:
            if self._getters:  # the queue is empty and someone waits: hand the item over
                getter = self._getters.popleft()
                getter.item = item
                getter.granted = True
                self.unfinished_tasks += 1
            elif not (0 < self.maxsize <= len(self._items)):
                self._items.append(item)
                self.unfinished_tasks += 1
                return
            elif not block:
                raise _stdqueue.Full
            else:
                getter = None
                entry = _Entry(_wait.current().waiter(self), item)
                self._putters.append(entry)
        if getter is not None:
            getter.waiter.notify()
            return
        if not _block(self._mutex, self._putters, entry, timeout, _ignore):
            raise _stdqueue.Full

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        timeout = queue_timeout(block, timeout)
        entry = None
        putter = None
        with self._mutex:
            if self._items:
                item = self._items.popleft()
                if self._putters:  # room now: take the first waiting put's item in
                    putter = self._putters.popleft()
                    self._items.append(putter.item)
                    putter.granted = True
                    self.unfinished_tasks += 1
            elif not block:
                raise _stdqueue.Empty
            else:
                entry = _Entry(_wait.current().waiter(self))
                self._getters.append(entry)
        if entry is None:
            if putter is not None:
                putter.waiter.notify()
            return item
        if _block(self._mutex, self._getters, entry, timeout, self._give_back):
            return entry.item
        raise _stdqueue.Empty

    def _give_back(self, entry: _Entry) -> None:
        """A getter was handed an item but was stopped before taking it."""
        with self._mutex:
            if self._getters:
                getter = self._getters.popleft()
                getter.item = entry.item
                getter.granted = True
            else:
                self._items.appendleft(entry.item)
                getter = None
        if getter is not None:
            getter.waiter.notify()

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def get_nowait(self) -> Any:
        return self.get(False)

    def task_done(self) -> None:
        with self._mutex:
            if self.unfinished_tasks <= 0:
                raise ValueError("task_done() called too many times")
            self.unfinished_tasks -= 1
            if self.unfinished_tasks:
                return
            joiners, self._joiners = self._joiners, []
        for waiter in joiners:
            waiter.notify()

    def join(self) -> None:
        with self._mutex:
            if not self.unfinished_tasks:
                return
            waiter = _wait.current().waiter(self)
            self._joiners.append(waiter)
        try:
            waiter.wait(None)
        finally:
            with self._mutex:
                if waiter in self._joiners:
                    self._joiners.remove(waiter)

    def __repr__(self) -> str:
        size = f"{len(self._items)}/{self.maxsize}" if self.maxsize > 0 else f"{len(self._items)}"
        parts = [f"size={size}"]
        if self._getters:
            parts.append(f"{len(self._getters)} get() waiting")
        if self._putters:
            parts.append(f"{len(self._putters)} put() waiting")
        if self._joiners:
            parts.append(f"join() waiting for {self.unfinished_tasks} task_done()")
        return f"<unifex_greenlet.Queue at {id(self):#x} {', '.join(parts)}>"


GreenletQueue = Queue


def _ignore(entry: _Entry) -> None:
    """A put whose item was taken in already counts as done, stopped or not."""
