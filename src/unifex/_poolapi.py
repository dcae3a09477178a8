"""The ``multiprocessing.Pool`` spelling on every kind, written once on top of
``apply_async`` and the batch hook: ``apply``, ``map_async``, ``starmap``,
``starmap_async``, ``imap``, ``imap_unordered`` and ``join``. (``map`` itself
follows :mod:`concurrent.futures`: a lazy iterator; ``list(ex.map(...))`` is
``Pool.map``.)"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

from ._future import Future

if TYPE_CHECKING:
    from ._base import BaseExecutor

__all__ = ["PoolMethods"]

T = TypeVar("T")


class PoolMethods:
    """Mixed into :class:`~unifex._base.BaseExecutor`."""

    def apply(self: BaseExecutor, func: Callable[..., T], args: Iterable[Any] = (), kwds: dict[str, Any] | None = None) -> T:  # type: ignore[misc]
        """``Pool.apply``: run ``func(*args, **kwds)`` on a worker and return its result."""
        return self.apply_async(func, args, kwds).result()

    def map_async(  # type: ignore[misc]
        self: BaseExecutor,
        func: Callable[..., T],
        iterable: Iterable[Any],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> Future[list[T]]:
        """``Pool.map_async``: every input submitted now; the future's result
        is the list of results (``get()``), or the first error by position."""
        return _map_async(self, func, iterable, chunksize, callback, error_callback, star=False)

    def starmap_async(  # type: ignore[misc]
        self: BaseExecutor,
        func: Callable[..., T],
        iterable: Iterable[Iterable[Any]],
        chunksize: int | None = None,
        callback: Callable[[list[T]], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
    ) -> Future[list[T]]:
        """``Pool.starmap_async``: ``map_async`` with ``func(*args)`` for each
        argument tuple."""
        return _map_async(self, func, iterable, chunksize, callback, error_callback, star=True)

    def starmap(self: BaseExecutor, func: Callable[..., T], iterable: Iterable[Iterable[Any]], chunksize: int | None = None) -> list[T]:  # type: ignore[misc]
        """``Pool.starmap``: ``[func(*args) for args in iterable]`` on the workers."""
        return _map_async(self, func, iterable, chunksize, None, None, star=True).result()

    def imap(self: BaseExecutor, func: Callable[..., T], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[T]:  # type: ignore[misc]
        """``Pool.imap``: the lazy ``map``, results in input order. An error
        raised by ``iterable`` comes from ``next()`` after the results of the
        chunks read before it, as in ``multiprocessing``."""
        return _imap(self, func, iterable, chunksize, ordered=True)

    def imap_unordered(self: BaseExecutor, func: Callable[..., T], iterable: Iterable[Any], chunksize: int = 1) -> Iterator[T]:  # type: ignore[misc]
        """``Pool.imap_unordered``: the lazy ``map``, results as they finish."""
        return _imap(self, func, iterable, chunksize, ordered=False)

    def join(self: BaseExecutor) -> None:  # type: ignore[misc]
        """``Pool.join``: after ``close()`` or ``terminate()``, wait for the
        workers to exit. ``ValueError`` while the executor is still open."""
        if not self.closed:
            raise ValueError(f"join() needs close() or terminate() first: this {self.kind!r} executor is still running")
        from ._base import TERMINATED

        if self._state != TERMINATED:
            self.close(wait=True)


def _imap(ex: BaseExecutor, func: Callable[..., T], iterable: Iterable[Any], chunksize: int, ordered: bool) -> Iterator[T]:
    from ._base import check_size

    check_size(chunksize, "chunksize")
    failed: list[BaseException] = []
    results = ex.map(func, _whole_chunks(iterable, chunksize, failed), chunksize=chunksize, ordered=ordered)
    return _then_raise(results, failed)


def _whole_chunks(iterable: Iterable[Any], chunksize: int, failed: list[BaseException]) -> Iterator[Any]:
    """``iterable`` read a chunk at a time; when reading raises, the input ends
    there, without the partly read chunk, and the error goes to ``failed``
    (``multiprocessing`` loses that chunk the same way)."""
    it = iter(iterable)
    while True:
        try:
            chunk = list(itertools.islice(it, chunksize))
        except Exception as exc:
            failed.append(exc)
            return
        if not chunk:
            return
        yield from chunk


def _then_raise(results: Iterator[T], failed: list[BaseException]) -> Iterator[T]:
    yield from results
    if failed:
        try:
            raise failed[0]
        finally:
            failed.clear()


def _map_async(
    ex: BaseExecutor,
    func: Callable[..., Any],
    iterable: Iterable[Any],
    chunksize: int | None,
    callback: Callable[[list[Any]], object] | None,
    error_callback: Callable[[BaseException], object] | None,
    star: bool,
) -> Future[list[Any]]:
    from ._base import _result_callback, check_size

    check_size(chunksize, "chunksize")
    if ex._state:
        raise ex._closed_error()
    items = list(iterable)
    if star:
        items = [tuple(args) for args in items]
    if chunksize is None:
        chunksize = max(1, ex._default_chunksize(len(items)))
    fn = ex._task_fn(func)
    outer: Future[list[Any]] = Future(ex)
    if callback is not None or error_callback is not None:
        on_done = _result_callback(callback, error_callback)
        outer._callbacks = [on_done]
        outer._pool_ran = on_done.ran  # type: ignore[attr-defined]
    batches = [items[i : i + chunksize] for i in range(0, len(items), chunksize)]
    if not batches:
        outer.set_running_or_notify_cancel()
        outer.try_set_result([])
        return outer
    parts: list[Any] = [None] * len(batches)
    left = [len(batches)]
    lock = threading.Lock()

    def on_batch(index: int, fut: Future[Any]) -> None:
        if outer.done():
            return
        if fut.cancelled():
            outer.try_set_exception(_cancelled())
            return
        exc = fut._exception
        if exc is None:
            results, exc = fut._result
        if exc is not None:
            outer.try_set_exception(exc)
            return
        parts[index] = results
        with lock:
            left[0] -= 1
            last = left[0] == 0
        if last:
            outer.try_set_result(list(itertools.chain.from_iterable(parts)))

    outer.set_running_or_notify_cancel()
    start = 0
    futs: list[Future[Any]] = []
    per_call: dict[str, Any] = {}
    with ex._state_lock:
        if ex._state:
            raise ex._closed_error()
        for batch in batches:
            fut: Future[Any] = Future(ex)
            ex._dispatch_batch(fut, fn, batch, not star, start, per_call)
            start += len(batch)
            futs.append(fut)
    for index, fut in enumerate(futs):
        fut.add_done_callback(lambda f, i=index: on_batch(i, f))  # type: ignore[misc]
    return outer


def _cancelled() -> BaseException:
    from concurrent.futures import CancelledError

    return CancelledError("a task of this map was cancelled before it ran")
