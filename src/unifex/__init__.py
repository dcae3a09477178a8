"""unifex: one executor API over every concurrency model Python has.

    with unifex.executor("gevent", size=5) as ex:   # or "thread", "process", ...
        for page in ex.map(fetch, urls):
            ...
"""

from __future__ import annotations

from concurrent.futures import CancelledError

from ._api import ConditionLike, EventLike, Executor, LockLike, QueueLike, RLockLike, SemaphoreLike, executor
from ._errors import (
    DeadlockError,
    ExecutorClosedError,
    LivelockError,
    SerializationError,
    TaskTimeoutError,
    TerminatedError,
    UnifexError,
    UnknownBackendError,
    WorkerCrashedError,
)
from ._future import ALL_COMPLETED, FIRST_COMPLETED, FIRST_EXCEPTION, Future, as_completed, wait
from ._progress import progress
from ._registry import backends, register_backend
from ._wait import sleep
from ._worker import worker_state

__version__ = "0.1.0"

__all__ = (
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "CancelledError",
    "ConditionLike",
    "DeadlockError",
    "EventLike",
    "Executor",
    "ExecutorClosedError",
    "Future",
    "LivelockError",
    "LockLike",
    "QueueLike",
    "RLockLike",
    "SemaphoreLike",
    "SerializationError",
    "TaskTimeoutError",
    "TerminatedError",
    "UnifexError",
    "UnknownBackendError",
    "WorkerCrashedError",
    "__version__",
    "as_completed",
    "backends",
    "executor",
    "progress",
    "register_backend",
    "sleep",
    "wait",
    "worker_state",
)
