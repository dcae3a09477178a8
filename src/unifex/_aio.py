"""asyncio on every kind: ``await fut``, ``ex.amap(...)``, and ``async def``
functions submitted as tasks (each runs to completion in an event loop on its
worker)."""

from __future__ import annotations

import asyncio
import inspect
import types
from collections.abc import AsyncIterator, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeVar

from ._future import Future

if TYPE_CHECKING:
    from ._base import BaseExecutor

__all__ = ["amap", "is_async", "run_coroutine", "wrap"]

T = TypeVar("T")

_ASYNC_FLAGS = inspect.CO_COROUTINE | inspect.CO_ASYNC_GENERATOR
_PLAIN = (types.BuiltinFunctionType, types.BuiltinMethodType, type, types.MethodWrapperType, types.WrapperDescriptorType)


def is_async(fn: object) -> bool:
    """Whether calling ``fn`` makes a coroutine (an ``async def`` function, a
    bound method or ``functools.partial`` of one). Cheap for plain functions:
    it runs on every submit."""
    code = getattr(fn, "__code__", None)
    if code is not None:
        return bool(code.co_flags & inspect.CO_COROUTINE)
    if isinstance(fn, _PLAIN):
        return False
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(getattr(fn, "__call__", None))  # noqa: B004


def run_coroutine(fn: Callable[..., Coroutine[Any, Any, T]], /, *args: Any, **kwargs: Any) -> T:
    """What a worker runs for an ``async def`` task: the coroutine to completion
    in a fresh event loop of the worker's thread."""
    return asyncio.run(fn(*args, **kwargs))


def wrap(fut: Future[T]) -> asyncio.Future[T]:
    """An asyncio future of the running loop that follows ``fut``. Cancelling it
    cancels ``fut`` if the task has not started, and otherwise asks the executor
    to stop the running task where its model can."""
    afut = asyncio.wrap_future(fut)

    def on_done(af: asyncio.Future[T]) -> None:
        if af.cancelled() and not fut.done():
            owner = fut._owner
            stop = getattr(owner, "_stop_running", None)
            if stop is not None and not fut.cancel():
                stop(fut)

    afut.add_done_callback(on_done)
    return afut


async def amap(
    ex: BaseExecutor,
    fn: Callable[..., T],
    iterables: tuple[Any, ...],
    timeout: float | None,
    chunksize: int | None,
    ordered: bool,
    buffersize: int | None,
) -> AsyncIterator[T]:
    """``Executor.amap``: the lazy bounded ``map`` whose waits are awaits."""
    from ._map import start_map

    run = start_map(ex, fn, iterables, timeout, chunksize, ordered, buffersize)
    pending = run.pending
    chunked = run.runner is not None
    try:
        while pending:
            remaining = run._remaining()
            if ordered:
                fut = pending[0]
                afut = wrap(fut)
                try:
                    await asyncio.wait_for(asyncio.shield(afut), remaining)
                except asyncio.TimeoutError:
                    raise TimeoutError("amap() did not finish within its timeout") from None
                pending.popleft()
            else:
                waiting = {wrap(f): f for f in pending}
                done, _ = await asyncio.wait(waiting, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    raise TimeoutError("amap() did not finish within its timeout")
                fut = waiting[next(iter(done))]
                del waiting, done
                pending.remove(fut)
            out = [fut.result()]
            del fut
            run._fill(run.in_flight)
            if chunked:
                results, exc = out.pop()
                for r in results:
                    yield r
                del results
                if exc is not None:
                    raise exc
            else:
                yield out.pop()
    finally:
        for f in pending:
            if not f.cancel():
                stop = getattr(ex, "_stop_running", None)
                if stop is not None:
                    stop(f)
