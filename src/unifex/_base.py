"""What every backend shares: the lifecycle state machine, ``apply_async`` and a
lazy, bounded ``map`` written once on top of ``_dispatch``, argument checks, the
deadline timer of thread tasks, and the task runner of thread workers.

A backend subclasses :class:`BaseExecutor` and implements ``_dispatch`` (hand a
task to a worker), ``_shutdown`` (close) and ``_terminate``, plus the helper
factories when the thread helpers do not fit its model.
"""

from __future__ import annotations

import abc
import concurrent.futures as cf
import functools
import heapq
import itertools
import os
import threading
import time
from asyncio import _get_running_loop
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from concurrent.futures import CancelledError
from contextvars import copy_context
from typing import Any, ClassVar, TypeVar

from typing_extensions import ParamSpec

from . import _exit, _wait
from ._aio import amap, drive, is_async, run_coroutine
from ._errors import ExecutorClosedError, TaskTimeoutError, TerminatedError
from ._future import Future
from ._map import map_, run_chunk, run_items
from ._poolapi import PoolMethods
from ._share import Shared

__all__ = ["BaseExecutor", "Timer", "check_size", "run_chunk", "run_items", "run_task"]

T = TypeVar("T")
P = ParamSpec("P")

RUNNING, CLOSED, TERMINATED = 0, 1, 2
_monotonic = time.monotonic


_Context = type(copy_context())


def default_thread_count() -> int:
    return min(32, (os.cpu_count() or 1) + 4)


def check_size(size: object, name: str = "size") -> int | None:
    """``size`` must be a positive int or None."""
    if size is None:
        return None
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ValueError(f"{name} must be a positive int or None, not {size!r}")
    return size


def check_timeout(timeout: object, name: str = "timeout") -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout > 0:
        raise ValueError(f"{name} must be a positive number of seconds or None, not {timeout!r}")
    return float(timeout)


def describe_call(fn: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None, limit: int = 80) -> str:
    """``f(3, key='x')`` for messages, cut to ``limit`` characters."""
    if type(getattr(fn, "__self__", None)) is _Context and args:  # a task run in a copy of the caller's context
        fn, args = args[0], args[1:]
    if fn is run_coroutine and args:
        fn, args = args[0], args[1:]
    name = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)
    parts = [repr(a) for a in args] + [f"{k}={v!r}" for k, v in (kwargs or {}).items()]
    text = f"{name}({', '.join(parts)})"
    return text if len(text) <= limit else text[: limit - 4] + "...)"


class Timer:
    """Calls ``fn(arg)`` at monotonic times on one lazily started thread, which
    exits when nothing is left to call."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._heap: list[tuple[float, int, Callable[[Any], object], Any]] = []
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def call_at(self, when: float, fn: Callable[[Any], object], arg: Any) -> None:
        with self._cond:
            seq = next(self._seq)
            heapq.heappush(self._heap, (when, seq, fn, arg))
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                self._thread.start()
            elif self._heap[0][1] == seq:  # new earliest deadline: wake the thread to re-arm
                self._cond.notify()

    def _run(self) -> None:
        cond = self._cond
        with cond:
            while self._heap:
                when = self._heap[0][0]
                delay = when - _monotonic()
                if delay > 0:
                    cond.wait(delay)
                    continue
                _, _, fn, arg = heapq.heappop(self._heap)
                cond.release()
                try:
                    fn(arg)
                finally:
                    cond.acquire()
            self._thread = None

    def stop(self) -> None:
        """Drop every pending call and wait for the thread to end."""
        with self._cond:
            self._heap.clear()
            thread = self._thread
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()


def _expire(fut: Future[Any]) -> None:
    fut.try_set_exception(TaskTimeoutError("the task ran past its timeout; the thread finishes it in the background"))


def run_task(item: tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any], float | None], timer: Timer | None) -> None:
    """Run one task in the calling thread and settle its future.

    With a timeout, the future fails with ``TaskTimeoutError`` at the deadline
    (threads cannot be killed: the function runs on, and its later result is
    dropped), and the task's blocking unifex calls raise once it has passed.
    """
    fut, fn, args, kwargs, timeout = item
    if not fut.set_running_or_notify_cancel():
        return
    if timeout is None:
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            fut.try_set_exception(exc)
        else:
            fut.try_set_result(result)
        return
    deadline = _monotonic() + timeout
    assert timer is not None
    timer.call_at(deadline, _expire, fut)
    _wait.set_task_deadline(deadline)
    try:
        result = fn(*args, **kwargs)
    except BaseException as exc:
        outcome: BaseException | None = exc
    else:
        outcome = None
    finally:
        _wait.set_task_deadline(None)
    if _monotonic() >= deadline:
        # past the deadline the task has timed out, whether or not the timer thread got there first
        _expire(fut)
    elif outcome is not None:
        fut.try_set_exception(outcome)
    else:
        fut.try_set_result(result)


def terminated_error() -> TerminatedError:
    return TerminatedError("the task was running when terminate() stopped the executor")


def stopped_error() -> CancelledError:
    return CancelledError("the task was stopped while running: the asyncio task awaiting it was cancelled")


def fail_unfinished(futures: Iterable[Future[Any]]) -> None:
    """On terminate: cancel what has not started, fail what runs with TerminatedError."""
    for fut in futures:
        if fut is not None and not fut.cancel():
            fut.try_set_exception(terminated_error())


class BaseExecutor(PoolMethods, cf.Executor, abc.ABC):
    """Lifecycle, ``apply_async`` and ``map`` for every backend; a
    :class:`concurrent.futures.Executor`, with the ``multiprocessing.Pool``
    spelling (:class:`~unifex._poolapi.PoolMethods`) beside it."""

    kind: ClassVar[str] = "?"
    #: options this kind accepts besides ``size``
    options: ClassVar[frozenset[str]] = frozenset()
    #: what the conformance suite may expect (see ``unifex.testing``)
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: run each task in a copy of the submitter's ``contextvars`` context (the
    #: in-process kinds; default: kinds without the "processes" capability)
    _copy_context: ClassVar[bool] = True
    #: at normal interpreter exit, run the accepted tasks (close(wait=True)) as
    #: ``concurrent.futures`` does
    _drain_at_exit: ClassVar[bool] = True
    #: tasks run only when the submitting thread yields (gevent, greenlet)
    _cooperative: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_copy_context" not in cls.__dict__:
            cls._copy_context = "processes" not in cls.capabilities
        cls._cooperative = "cooperative" in cls.capabilities

    def __init__(self, size: int | None = None) -> None:
        size = check_size(size)
        self.size: int = size if size is not None else self.default_size()
        self._state = RUNNING
        self._state_lock = threading.RLock()
        self._timer_: Timer | None = None
        _exit.track(self)

    @classmethod
    def default_size(cls) -> int:
        return default_thread_count()

    def __repr__(self) -> str:
        state = ("running", "closed", "terminated")[self._state]
        return f"<unifex.executor kind={self.kind!r} size={self.size} {state}>"

    # -- to implement --------------------------------------------------------------

    @abc.abstractmethod
    def _dispatch(self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None) -> None:
        """Hand one task to the workers; called with the state lock held."""

    @abc.abstractmethod
    def _shutdown(self, wait: bool) -> None:
        """Stop accepting work (already refused by the base) and, with ``wait``,
        return when every accepted task and its callbacks are done and every
        worker is gone. Called on every ``close()``."""

    @abc.abstractmethod
    def _terminate(self) -> None:
        """Cancel queued tasks, stop running ones where the model can, fail their
        futures with ``TerminatedError``. Called once."""

    def _dispatch_batch(self, fut: Future[Any], fn: Callable[..., Any], batch: list[Any], flat: bool, start: int) -> None:
        """Hand one ``map`` batch to the workers; called with the state lock held.

        ``batch`` holds the items themselves when ``flat`` (one iterable), else
        argument tuples; ``start`` is the position of its first item in the
        whole ``map``, for messages. The future's result is ``(results, error)``
        as :func:`run_items` / :func:`run_chunk` return it. Backends that ship
        batches their own way override this; the default runs the batch as one
        ordinary task."""
        if self._copy_context:
            self._dispatch(fut, copy_context().run, (run_items if flat else run_chunk, fn, batch), {}, None)
        else:
            self._dispatch(fut, run_items if flat else run_chunk, (fn, batch), {}, None)

    def _default_chunksize(self, hint: int | None) -> int:
        """Inputs per batch for ``map(chunksize=None)``; ``hint`` is the input
        length when known. Cheap-to-send kinds keep 1."""
        return 1

    # -- shared helpers for backends -----------------------------------------------

    @property
    def _timer(self) -> Timer:
        timer = self._timer_
        if timer is None:
            with self._state_lock:
                if self._timer_ is None:
                    self._timer_ = Timer(f"unifex-{self.kind}-timeouts")
                timer = self._timer_
        return timer

    def _stop_timer(self) -> None:
        if self._timer_ is not None:
            self._timer_.stop()

    def _closed_error(self) -> ExecutorClosedError:
        how = "terminated" if self._state == TERMINATED else "closed"
        if _exit.exiting:
            how += " (cannot schedule new futures after interpreter shutdown)"
        return ExecutorClosedError(f"this {self.kind!r} executor is {how}; no new work is accepted. Create a new executor with unifex.executor({self.kind!r})")

    # -- the public protocol -------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._state != RUNNING

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        """Schedule ``fn(*args, **kwargs)``; return its :class:`unifex.Future`."""
        fut: Future[T] = Future(self)
        if is_async(fn):
            args = (fn, *args)  # type: ignore[assignment]
            fn = run_coroutine  # type: ignore[assignment]
        if self._copy_context:
            args = (fn, *args)  # type: ignore[assignment]
            fn = copy_context().run  # type: ignore[assignment]
        with self._state_lock:
            if self._state:
                raise self._closed_error()
            self._dispatch(fut, fn, args, kwargs, None)
        if self._cooperative and _get_running_loop() is not None:
            drive(fut)  # loop.run_in_executor(ex, ...) from a coroutine in this thread
        return fut

    def apply_async(
        self,
        func: Callable[..., T],
        args: Iterable[Any] = (),
        kwds: dict[str, Any] | None = None,
        callback: Callable[[T], object] | None = None,
        error_callback: Callable[[BaseException], object] | None = None,
        *,
        timeout: float | None = None,
    ) -> Future[T]:
        """``multiprocessing.Pool.apply_async``: ``callback(result)`` on success,
        ``error_callback(exc)`` on failure, both in the submitting process;
        ``timeout`` seconds per task, counted from when the task starts."""
        timeout = check_timeout(timeout)
        fut: Future[T] = Future(self)
        if callback is not None or error_callback is not None:
            fut._callbacks = [_result_callback(callback, error_callback)]
        fn: Callable[..., Any] = func
        args = tuple(args)
        if is_async(fn):
            args = (fn, *args)
            fn = run_coroutine
        if self._copy_context:
            args = (fn, *args)
            fn = copy_context().run
        with self._state_lock:
            if self._state:
                raise self._closed_error()
            self._dispatch(fut, fn, args, dict(kwds) if kwds else {}, timeout)  # type: ignore[arg-type]
        return fut

    def _task_fn(self, fn: Callable[..., T]) -> Callable[..., T]:
        """What a worker calls for ``fn``: an ``async def`` function runs to
        completion in an event loop of the worker."""
        if is_async(fn):
            return functools.partial(run_coroutine, fn)  # type: ignore[arg-type]
        return fn

    def map(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        ordered: bool = True,
        buffersize: int | None = None,
    ) -> Iterator[T]:
        """Lazy ``map``: at most ``buffersize`` inputs in flight (default
        ``4 * size`` tasks' worth, so with a batch size picked from the input's
        length every batch is in flight at once, as in
        ``multiprocessing.Pool.map``), results in input order unless
        ``ordered=False``, the first task error raised at its position, and
        ``timeout`` a deadline counted from this call."""
        return map_(self, fn, iterables, timeout, chunksize, ordered, buffersize)

    def amap(
        self,
        fn: Callable[..., T],
        *iterables: Iterable[Any],
        timeout: float | None = None,
        chunksize: int | None = None,
        ordered: bool = True,
        buffersize: int | None = None,
    ) -> AsyncIterator[T]:
        """``map`` for a coroutine: ``async for r in ex.amap(fn, items)`` yields
        the results without blocking the event loop. Leaving the loop early (or
        cancelling the asyncio task) cancels what has not started and stops
        running tasks where the model allows."""
        return amap(self, fn, iterables, timeout, chunksize, ordered, buffersize)

    def _stop_running(self, fut: Future[Any]) -> None:
        """Stop the running task of ``fut`` where the model allows (asyncio
        cancelled its awaiter); a backend that can kill one task overrides
        this. The default lets the task finish."""

    def _cancel_queued(self) -> None:
        """Cancel every accepted task that has not started (``shutdown(cancel_futures=True)``);
        backends with a queue override this."""

    def share(self, obj: T) -> Shared[T]:
        """A handle to ``obj`` that tasks receive as an ordinary argument and
        read with ``handle.value``; each worker resolves it once and caches it."""
        if self._state:
            raise self._closed_error()
        return self._share(obj)

    def _share(self, obj: T) -> Shared[T]:
        """In-process kinds share the object itself; ``process`` and ``dask``
        override this."""
        return Shared(obj)

    def close(self, wait: bool = True) -> None:
        """No new work; with ``wait``, return when every accepted task (and its
        callbacks) has finished and every worker is gone. Idempotent."""
        with self._state_lock:
            if self._state == RUNNING:
                self._state = CLOSED
            terminated = self._state == TERMINATED
        if not terminated:
            self._shutdown(wait)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """:meth:`concurrent.futures.Executor.shutdown`: ``close(wait)``; with
        ``cancel_futures``, tasks not yet started are cancelled first."""
        if cancel_futures:
            with self._state_lock:
                if self._state == RUNNING:
                    self._state = CLOSED
            self._cancel_queued()
        self.close(wait)

    def terminate(self) -> None:
        """Stop now: cancel queued tasks, stop running ones where the model
        allows, fail their futures with ``TerminatedError``. Idempotent."""
        with self._state_lock:
            if self._state == TERMINATED:
                return
            self._state = TERMINATED
        self._terminate()

    def __enter__(self: T) -> T:  # type: ignore[misc]
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.terminate()
        else:
            self.close(wait=True)

    # -- helpers (section 4 of the contract); thread helpers by default -----------

    def Lock(self) -> Any:
        from ._shared import Lock

        return Lock()

    def RLock(self) -> Any:
        from ._shared import RLock

        return RLock()

    def Event(self) -> Any:
        from ._shared import Event

        return Event()

    def Semaphore(self, n: int = 1) -> Any:
        from ._shared import Semaphore

        return Semaphore(n)

    def BoundedSemaphore(self, n: int = 1) -> Any:
        from ._shared import BoundedSemaphore

        return BoundedSemaphore(n)

    def Condition(self, lock: Any = None) -> Any:
        from ._shared import Condition

        return Condition(lock)

    def Queue(self, maxsize: int = 0) -> Any:
        from ._shared import Queue

        return Queue(maxsize)

    def dict(self, *args: Any, **kwargs: Any) -> Any:
        return dict(*args, **kwargs)


def _result_callback(
    callback: Callable[[Any], object] | None, error_callback: Callable[[BaseException], object] | None
) -> Callable[[Future[Any]], None]:
    def on_done(fut: Future[Any]) -> None:
        if fut.cancelled():
            if error_callback is not None:
                error_callback(CancelledError("the task was cancelled before it ran"))
            return
        exc = fut._exception
        if exc is None:
            if callback is not None:
                callback(fut._result)
        elif error_callback is not None:
            error_callback(exc)

    return on_done
