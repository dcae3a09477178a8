"""The stdlib's checks of helper arguments, once for every kind.

Each function takes the arguments as the stdlib spells them and returns how
long to wait in seconds: ``None`` for "until it happens", ``0.0`` for "do not
wait"; a bad argument raises the exception the stdlib raises for it
(``ValueError``, ``TypeError``, ``OverflowError``), with the stdlib's message
where it says what to do, and a clearer one where the stdlib's is a
``'<' not supported`` accident.
"""

from __future__ import annotations

from _thread import TIMEOUT_MAX

__all__ = ["lock_timeout", "queue_maxsize", "queue_timeout", "release_count", "semaphore_timeout", "semaphore_value", "wait_timeout"]


def _seconds(timeout: object, what: str) -> float:
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"{what} must be a number of seconds, not {timeout!r}")
    return float(timeout)


def lock_timeout(blocking: bool, timeout: float) -> float | None:
    """``Lock.acquire(blocking, timeout)`` / ``RLock.acquire``: ``timeout`` is
    seconds, or -1 for no limit, and only goes with ``blocking=True``."""
    if timeout == -1:
        return None if blocking else 0.0
    if not blocking:
        raise ValueError("can't specify a timeout for a non-blocking call")
    seconds = _seconds(timeout, "timeout")
    if seconds < 0:
        raise ValueError(f"timeout value must be positive (or -1 to wait without limit), not {timeout!r}")
    if seconds > TIMEOUT_MAX:
        raise OverflowError(f"timeout value is too large: {timeout!r} > threading.TIMEOUT_MAX ({TIMEOUT_MAX})")
    return seconds


def semaphore_timeout(blocking: bool, timeout: float | None) -> float | None:
    """``Semaphore.acquire(blocking, timeout)``: ``timeout`` is seconds or None
    (no limit), and only goes with ``blocking=True``; a negative one does not wait."""
    if timeout is None:
        return None if blocking else 0.0
    if not blocking:
        raise ValueError("can't specify timeout for non-blocking acquire")
    return max(0.0, _seconds(timeout, "timeout"))


def wait_timeout(timeout: float | None) -> float | None:
    """``Event.wait(timeout)`` / ``Condition.wait(timeout)``: seconds or None;
    a negative timeout does not wait."""
    if timeout is None:
        return None
    return max(0.0, _seconds(timeout, "timeout"))


def queue_timeout(block: bool, timeout: float | None) -> float | None:
    """``Queue.get/put(block, timeout)``: ``timeout`` counts only with ``block``,
    and must then be None or non-negative."""
    if not block:
        return 0.0
    if timeout is None:
        return None
    seconds = _seconds(timeout, "'timeout'")
    if seconds < 0:
        raise ValueError(f"'timeout' must be a non-negative number, not {timeout!r}")
    return seconds


def semaphore_value(value: object) -> int:
    """A semaphore's initial value: an int >= 0."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"semaphore initial value must be an int >= 0, not {value!r}")
    if value < 0:
        raise ValueError(f"semaphore initial value must be >= 0, not {value!r}")
    return value


def release_count(n: object) -> int:
    """``Semaphore.release(n)``: an int >= 1."""
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int >= 1, not {n!r}")
    if n < 1:
        raise ValueError(f"n must be one or more, not {n!r}")
    return n


def queue_maxsize(maxsize: object) -> int:
    """``Queue(maxsize)``: an int; 0 or less means unbounded (returned as 0)."""
    if isinstance(maxsize, bool) or not isinstance(maxsize, int):
        raise TypeError(f"Queue maxsize must be an int (0 or less: unbounded), not {maxsize!r}")
    return max(0, maxsize)
