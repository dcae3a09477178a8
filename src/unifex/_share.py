"""``Executor.share(obj)``: a handle that tasks receive as an ordinary argument
and read with ``handle.value``; each worker resolves it once and caches it."""

from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Shared"]

T = TypeVar("T")


class Shared(Generic[T]):
    """A handle to an object shared with every worker of one executor.

    Pass it to tasks like any argument and read ``handle.value`` inside them.
    On the in-process kinds the value is the object itself; ``process`` and
    ``dask`` override :meth:`unifex._base.BaseExecutor._share` to send it once
    per worker. A handle outlives no executor: after ``close()`` or
    ``terminate()`` its resources are released.
    """

    __slots__ = ("_value",)

    def __init__(self, value: T) -> None:
        self._value = value

    @property
    def value(self) -> T:
        return self._value

    def _release(self) -> None:
        """Free what the handle holds; called when its executor closes."""

    def __repr__(self) -> str:
        return f"<unifex.Shared {type(self._value).__name__}>"
