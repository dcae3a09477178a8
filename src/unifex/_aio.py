"""asyncio on every kind: ``await fut``, ``ex.amap(...)``, and ``async def``
functions submitted as tasks (each runs to completion in an event loop on its
worker)."""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import threading
import types
import weakref
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
    in a fresh event loop of the worker's thread (of a helper thread when a loop
    already runs in this one: the ``serial`` kind called from a coroutine)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(fn(*args, **kwargs))
    box: list[Any] = []
    ctx = contextvars.copy_context()

    def run() -> None:
        try:
            box.append((True, ctx.run(asyncio.run, fn(*args, **kwargs))))
        except BaseException as exc:
            box.append((False, exc))

    helper = threading.Thread(target=run, name="unifex-async-task")
    helper.start()
    helper.join()
    ok, value = box.pop()
    if not ok:
        raise value
    return value  # type: ignore[no-any-return]


_drivers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[int, set[Future[Any]]]] = weakref.WeakKeyDictionary()


_driving: set[asyncio.Task[None]] = set()


def drive(fut: Future[Any]) -> None:
    """``fut`` belongs to a cooperative kind (gevent, greenlet) whose tasks run
    only when this thread yields to their hub / scheduler, and an asyncio loop
    runs here: keep yielding to them from the loop until ``fut`` is done."""
    loop = asyncio.get_running_loop()
    per_loop = _drivers.setdefault(loop, {})
    key = id(fut._owner)
    pending = per_loop.get(key)
    if pending is not None:
        pending.add(fut)
        return
    per_loop[key] = pending = {fut}
    task = loop.create_task(_drive(per_loop, key, pending))
    _driving.add(task)  # the loop keeps only a weak reference to its tasks
    task.add_done_callback(_driving.discard)


async def _drive(per_loop: dict[int, set[Future[Any]]], key: int, pending: set[Future[Any]]) -> None:
    from . import _wait

    idle = 0.0
    try:
        while True:
            for f in [f for f in pending if f.done()]:
                pending.discard(f)
            if not pending:
                return
            _wait.current().sleep(0)  # let the hub / scheduler run its ready tasks once
            await asyncio.sleep(idle)
            idle = min(0.005, idle + 0.0005)  # tasks that wait on timers: poll, gently
    finally:
        per_loop.pop(key, None)


def wrap(fut: Future[T]) -> asyncio.Future[T]:
    """An asyncio future of the running loop that follows ``fut``. Cancelling it
    cancels ``fut`` if the task has not started, and otherwise asks the executor
    to stop the running task where its model can."""
    afut = asyncio.wrap_future(fut)
    if not fut.done() and getattr(fut._owner, "_cooperative", False):
        drive(fut)

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
