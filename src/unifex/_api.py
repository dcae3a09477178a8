"""The :class:`Executor` protocol every backend satisfies, and the
:func:`executor` factory."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, Protocol, TypeVar, runtime_checkable

from typing_extensions import ParamSpec, Self

from ._base import check_size
from ._future import Future
from ._registry import get_factory

__all__ = ["Executor", "executor"]

T = TypeVar("T")
P = ParamSpec("P")


@runtime_checkable
class Executor(Protocol):
    """What every kind provides; see SPEC section 2."""

    kind: str
    size: int

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]: ...

    def apply_async(
        self,
        fn: Callable[..., T],
        args: Iterable[Any] = (),
        kwds: dict[str, Any] | None = None,
        *,
        callback: Callable[[T], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
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

    def close(self, wait: bool = True) -> None: ...

    def terminate(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None: ...

    def Lock(self) -> Any: ...

    def RLock(self) -> Any: ...

    def Event(self) -> Any: ...

    def Semaphore(self, n: int = 1) -> Any: ...

    def BoundedSemaphore(self, n: int = 1) -> Any: ...

    def Condition(self, lock: Any = None) -> Any: ...

    def Queue(self, maxsize: int = 0) -> Any: ...

    def dict(self, *args: Any, **kwargs: Any) -> Any: ...


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
