"""The helper protocols: what ``Lock()``, ``Queue()``, ... return on every
kind, spelled as the stdlib spells them, so that ``mypy --strict`` catches a
misspelt method or a wrong argument in code that uses any kind's helpers."""

from __future__ import annotations

from collections.abc import Callable
from types import TracebackType
from typing import Protocol, TypeVar, runtime_checkable

__all__ = ["ConditionLike", "EventLike", "LockLike", "QueueLike", "RLockLike", "SemaphoreLike"]

T = TypeVar("T")
R = TypeVar("R")


@runtime_checkable
class RLockLike(Protocol):
    """``threading.RLock``; also what every lock provides."""

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool: ...

    def release(self) -> None: ...

    def __enter__(self) -> bool: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /) -> None: ...


@runtime_checkable
class LockLike(RLockLike, Protocol):
    """``threading.Lock``."""

    def locked(self) -> bool: ...


@runtime_checkable
class EventLike(Protocol):
    """``threading.Event``."""

    def is_set(self) -> bool: ...

    def set(self) -> None: ...

    def clear(self) -> None: ...

    def wait(self, timeout: float | None = None) -> bool: ...


@runtime_checkable
class SemaphoreLike(Protocol):
    """``threading.Semaphore`` and ``threading.BoundedSemaphore``."""

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool: ...

    def release(self, n: int = 1) -> None: ...

    def __enter__(self) -> bool: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None, /) -> None: ...


@runtime_checkable
class ConditionLike(RLockLike, Protocol):
    """``threading.Condition``."""

    def wait(self, timeout: float | None = None) -> bool: ...

    def wait_for(self, predicate: Callable[[], R], timeout: float | None = None) -> R: ...

    def notify(self, n: int = 1) -> None: ...

    def notify_all(self) -> None: ...


@runtime_checkable
class QueueLike(Protocol[T]):
    """``queue.Queue``, with ``task_done`` and ``join``; ``get`` raises
    ``queue.Empty`` and ``put`` ``queue.Full`` as the stdlib does."""

    @property
    def maxsize(self) -> int: ...

    def put(self, item: T, block: bool = True, timeout: float | None = None) -> None: ...

    def get(self, block: bool = True, timeout: float | None = None) -> T: ...

    def put_nowait(self, item: T) -> None: ...

    def get_nowait(self) -> T: ...

    def qsize(self) -> int: ...

    def empty(self) -> bool: ...

    def full(self) -> bool: ...

    def task_done(self) -> None: ...

    def join(self) -> None: ...
