"""What every kind's helpers share: the stdlib's argument checks, translated
once (:mod:`.args`), one deadline-bounded wait (:mod:`.deadline`), and the
``with`` block of locks and semaphores (:mod:`.held`)."""

from __future__ import annotations

from .args import lock_timeout, queue_maxsize, queue_timeout, release_count, semaphore_timeout, semaphore_value, wait_timeout
from .deadline import bounded_call, bounded_wait, in_timed_task, take
from .held import Held

__all__ = [
    "Held",
    "bounded_call",
    "bounded_wait",
    "in_timed_task",
    "lock_timeout",
    "queue_maxsize",
    "queue_timeout",
    "release_count",
    "semaphore_timeout",
    "semaphore_value",
    "take",
    "wait_timeout",
]
