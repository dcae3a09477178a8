"""One wait primitive for every context: block a thread, yield to a gevent hub,
or suspend to a greenlet scheduler, chosen by where the wait happens.

Futures, ``wait``, ``as_completed``, ``unifex.sleep`` and the thread helpers all
wait through :func:`current`. A cooperative backend pushes its
:class:`WaitContext` onto the thread that owns it (:func:`push_context`), so that
waits in that thread, in the caller as in the tasks, let its tasks run.

Thread tasks with a per-task ``timeout`` carry a deadline in a thread-local;
every blocking unifex call made by such a task raises
:class:`~unifex.TaskTimeoutError` once the deadline has passed.
"""

from __future__ import annotations

import threading
import time
from _thread import allocate_lock
from typing import Protocol, runtime_checkable

from ._errors import TaskTimeoutError

__all__ = [
    "THREAD",
    "ThreadContext",
    "ThreadWaiter",
    "WaitContext",
    "Waiter",
    "current",
    "now",
    "push_context",
    "remove_context",
    "sleep",
    "task_deadline",
]

monotonic = time.monotonic


@runtime_checkable
class Waiter(Protocol):
    """A one-shot wake-up: :meth:`notify` may come from any thread, before or
    during :meth:`wait`, and more than once."""

    def notify(self) -> None: ...

    def wait(self, timeout: float | None) -> bool:
        """Return True once notified, False when ``timeout`` seconds pass first."""
        ...


@runtime_checkable
class WaitContext(Protocol):
    """How to wait where this context is current."""

    def waiter(self, source: object) -> Waiter:
        """A fresh waiter; ``source`` is the future or helper waited on (a
        scheduler may use it to tell its own waits from foreign ones)."""
        ...

    def sleep(self, seconds: float) -> None: ...


class _Local(threading.local):
    contexts: tuple[WaitContext, ...] = ()
    deadline: float | None = None


_local = _Local()


def task_deadline() -> float | None:
    """The ``time.monotonic()`` deadline of the thread task running here, if any."""
    return _local.deadline


def set_task_deadline(deadline: float | None) -> None:
    _local.deadline = deadline


def clamp(timeout: float | None) -> tuple[float | None, bool]:
    """Bound a blocking call's ``timeout`` by the current task's deadline.

    Returns the timeout to use and whether running out of it means the task's
    deadline passed (so the caller raises :class:`TaskTimeoutError`).
    Raises at once when the deadline has already passed.
    """
    deadline = _local.deadline
    if deadline is None:
        return timeout, False
    remaining = deadline - monotonic()
    if remaining <= 0:
        raise TaskTimeoutError("the task ran past its timeout")
    if timeout is None or timeout < 0 or timeout >= remaining:
        return remaining, True
    return timeout, False


def deadline_passed() -> TaskTimeoutError:
    return TaskTimeoutError("the task ran past its timeout")


class ThreadWaiter:
    """A waiter for plain threads: a lock that starts held; notify releases it."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = allocate_lock()
        self._lock.acquire()

    def notify(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # already notified
            pass

    def wait(self, timeout: float | None) -> bool:
        if _local.deadline is None:
            if timeout is None:
                return self._lock.acquire()
            return self._lock.acquire(True, max(timeout, 0.0))
        bounded, is_deadline = clamp(timeout)
        assert bounded is not None
        if self._lock.acquire(True, max(bounded, 0.0)):
            return True
        if is_deadline:
            raise deadline_passed()
        return False


class ThreadContext:
    """Waiting in a thread that runs no cooperative scheduler."""

    def waiter(self, source: object) -> Waiter:
        return ThreadWaiter()

    def sleep(self, seconds: float) -> None:
        bounded, is_deadline = clamp(seconds)
        if bounded is not None:
            time.sleep(max(bounded, 0.0))  # sleep(0) too: it yields the GIL, as time.sleep(0) does
        if is_deadline:
            raise deadline_passed()

    def __repr__(self) -> str:
        return "<unifex thread wait context>"


THREAD: WaitContext = ThreadContext()


def current() -> WaitContext:
    """The wait context of the calling thread: the newest cooperative one
    pushed here, else plain thread blocking."""
    contexts = _local.contexts
    return contexts[-1] if contexts else THREAD


def now() -> float:
    """The clock of the calling thread's wait context: ``time.monotonic()``, or
    a cooperative scheduler's own clock (the ``greenlet`` kind's virtual clock),
    so that deadlines counted across several waits use the waits' seconds."""
    clock = getattr(current(), "now", None)
    return monotonic() if clock is None else float(clock())


def push_context(ctx: WaitContext) -> None:
    """Make ``ctx`` the wait context of the calling thread until removed.

    A context whose ``drives_below`` is true (the ``greenlet`` scheduler, which
    blocks through the context under it and hands it the waits of that
    context's own greenlets) stays on top: a context pushed after it goes
    under it, so both schedulers of the thread run whichever came first.
    """
    contexts = _local.contexts
    i = len(contexts)
    while i and getattr(contexts[i - 1], "drives_below", False) and not getattr(ctx, "drives_below", False):
        i -= 1
    _local.contexts = (*contexts[:i], ctx, *contexts[i:])


def remove_context(ctx: WaitContext) -> None:
    """Undo one :func:`push_context` of ``ctx`` made in this thread."""
    contexts = list(_local.contexts)
    for i in range(len(contexts) - 1, -1, -1):
        if contexts[i] is ctx:
            del contexts[i]
            break
    _local.contexts = tuple(contexts)


def sleep(seconds: float) -> None:
    """Sleep the way the current task's model wants: ``gevent.sleep`` in a
    gevent context, a yield to the scheduler under ``greenlet``, else
    ``time.sleep`` (``sleep(0)`` yields the GIL to other threads). In a thread task past its deadline, raise
    :class:`~unifex.TaskTimeoutError`."""
    if seconds < 0:
        raise ValueError(f"sleep length must be non-negative, not {seconds!r}")
    current().sleep(seconds)
