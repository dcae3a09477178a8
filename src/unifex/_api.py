"""The :class:`Executor` protocol every backend satisfies, and the
:func:`executor` factory."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, MutableMapping
from typing import Any, Protocol, TypeVar, runtime_checkable

from typing_extensions import ParamSpec, Self

from ._base import check_size
from ._future import Future
from ._protocols import ConditionLike, EventLike, LockLike, QueueLike, RLockLike, SemaphoreLike
from ._registry import get_factory
from ._share import Shared

__all__ = ["ConditionLike", "EventLike", "Executor", "LockLike", "QueueLike", "RLockLike", "SemaphoreLike", "executor"]

T = TypeVar("T")
P = ParamSpec("P")


@runtime_checkable
class Executor(Protocol):
    """What every kind provides; see SPEC section 2. Every executor is also a
    :class:`concurrent.futures.Executor`."""

    kind: str
    size: int

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]: ...

    def apply_async(
        self,
        func: Callable[..., T],
        args: Iterable[Any] = (),
        kwds: dict[str, Any] | None = None,
        callback: Callable[[T], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        timeout: float | None = None,
        retries: int | None = None,
        retry_on: Any = None,
        backoff: Any = None,
    ) -> Future[T]: ...

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        ordered: bool = True,
        buffersize: int | None = None,
        retries: int | None = None,
        retry_on: Any = None,
        backoff: Any = None,
        progress: Any = False,
    ) -> Iterator[T]: ...

    def share(self, obj: T) -> Shared[T]:
        """A handle to ``obj`` that tasks receive as an argument and read with
        ``handle.value`` (see docs/data.md)."""
        ...

    def amap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        ordered: bool = True,
        buffersize: int | None = None,
    ) -> AsyncIterator[T]: ...

    # the multiprocessing.Pool spelling (see docs/ecosystem.md)
    def apply(self, func: Callable[..., T], args: Iterable[Any] = (), kwds: dict[str, Any] | None = None) -> T: ...

    def map_async(
        self,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> Future[list[T]]: ...

    def starmap(self, func: Callable[..., T], iterable: Iterable[Iterable[Any]], chunksize: int | None = None) -> list[T]: ...

    def starmap_async(
        self,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> Future[list[T]]: ...

    def imap(self, func: Callable[..., T], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[T]: ...

    def imap_unordered(self, func: Callable[..., T], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[T]: ...

    def join(self) -> None: ...

    def close(self, wait: bool = True) -> None: ...

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None: ...

    def terminate(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None: ...

    def Lock(self) -> LockLike: ...

    def RLock(self) -> RLockLike: ...

    def Event(self) -> EventLike: ...

    def Semaphore(self, value: int = 1) -> SemaphoreLike: ...

    def BoundedSemaphore(self, value: int = 1) -> SemaphoreLike: ...

    def Condition(self, lock: RLockLike | None = None) -> ConditionLike: ...

    def Queue(self, maxsize: int = 0) -> QueueLike[Any]: ...

    def dict(self, *args: Any, **kwargs: Any) -> MutableMapping[Any, Any]: ...


def executor(kind: str = "thread", size: int | None = None, **options: Any) -> Executor:
    """Make an executor of ``kind`` with at most ``size`` workers.

    Raises :class:`~unifex.UnknownBackendError` for an unknown kind (or one
    whose optional dependency is missing), ``ValueError`` for a bad ``size``
    and ``TypeError`` for an option the kind does not take.
    """
    check_size(size)
    factory = get_factory(kind)
    accepted = getattr(factory, "options", None)
    if isinstance(accepted, frozenset):
        unknown = sorted(set(options) - accepted)
        if unknown:
            allowed = ", ".join(sorted(accepted)) or "none"
            raise TypeError(f"unknown option {unknown[0]!r} for backend {kind!r}; it takes: {allowed}")
    return factory(size=size, **options)  # type: ignore[no-any-return]
