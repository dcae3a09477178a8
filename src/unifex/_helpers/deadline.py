"""The deadline-bounded wait: a blocking helper call made by a task that has
a per-task ``timeout`` (thread tasks, dask worker threads) ends at the task's
deadline with :class:`~unifex.TaskTimeoutError`, whatever its own timeout.

Every kind's helpers wait through :func:`bounded_wait` (for waits that say
True/False) or :func:`bounded_call` (for waits that raise, like a queue's).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from .._wait import _local, clamp, deadline_passed

__all__ = ["bounded_call", "bounded_wait", "in_timed_task", "take"]

T = TypeVar("T")


def in_timed_task() -> bool:
    """Whether the calling thread runs a task with a deadline."""
    return _local.deadline is not None


def bounded_wait(wait: Callable[[float | None], bool], timeout: float | None) -> bool:
    """``wait(seconds)`` (None: no limit) bounded by the task's deadline.

    Returns what ``wait`` returns; raises :class:`~unifex.TaskTimeoutError`
    when the deadline, not ``timeout``, ended the wait, or had passed already.
    """
    if _local.deadline is None:
        return wait(timeout)
    seconds, is_deadline = clamp(timeout)
    if wait(seconds):
        return True
    if is_deadline:
        raise deadline_passed()
    return False


def bounded_call(call: Callable[[float | None], T], timeout: float | None, expired: type[BaseException]) -> T:
    """``call(seconds)`` bounded by the task's deadline, for waits that raise
    ``expired`` (``queue.Empty``, ``queue.Full``) when their time runs out."""
    if _local.deadline is None:
        return call(timeout)
    seconds, is_deadline = clamp(timeout)
    try:
        return call(seconds)
    except expired:
        if is_deadline:
            raise deadline_passed() from None
        raise


def take(acquire: Callable[..., object], seconds: float | None, forever: float | None = None) -> bool:
    """Take a lock or semaphore through its ``acquire(blocking, timeout)``: at
    once when it is free or ``seconds`` is 0.0, else waiting at most ``seconds``
    (None: no limit, passed on as ``forever``: None, or -1 for a raw lock),
    bounded by the task's deadline."""
    if acquire(False):
        return True
    if seconds == 0.0:
        return False
    return bounded_wait(lambda s: bool(acquire(True, forever if s is None else s)), seconds)
