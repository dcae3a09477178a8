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
from _thread import get_ident
from asyncio import _get_running_loop
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, MutableMapping
from concurrent.futures import CancelledError
from contextvars import copy_context
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from typing_extensions import ParamSpec

from . import _exit, _wait
from ._aio import amap, drive, is_async, run_coroutine
from ._errors import ExecutorClosedError, TaskTimeoutError, TerminatedError
from ._future import Future
from ._map import map_, run_chunk, run_items
from ._poolapi import PoolMethods
from ._protocols import ConditionLike, EventLike, LockLike, QueueLike, RLockLike, SemaphoreLike
from ._share import Shared

if TYPE_CHECKING:
    from ._retry import RetryPolicy

__all__ = ["COMMON_OPTIONS", "BaseExecutor", "Timer", "check_size", "run_chunk", "run_items", "run_task"]

T = TypeVar("T")
P = ParamSpec("P")

RUNNING, CLOSED, TERMINATED = 0, 1, 2
_monotonic = time.monotonic

#: options every kind accepts: executor-wide defaults of retries and the
#: ``submit`` backpressure (see ``docs/lifecycle.md``)
COMMON_OPTIONS = frozenset({"retries", "retry_on", "backoff", "max_pending"})


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


class _ExecutorMeta(abc.ABCMeta):
    """Executors are tracked for the exit hook (:mod:`unifex._exit`) once built:
    one whose ``__init__`` raised (a dask cluster that would not start) is not
    closed at exit half-made."""

    def __call__(cls, *args: Any, **kwargs: Any) -> Any:
        ex = super().__call__(*args, **kwargs)
        _exit.track(ex)
        return ex


class BaseExecutor(PoolMethods, cf.Executor, metaclass=_ExecutorMeta):
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
    #: ``_dispatch`` runs the task itself (``serial``): ``close(wait=False)`` and
    #: ``terminate()`` need not wait for dispatches in progress in other threads
    _runs_at_dispatch: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_copy_context" not in cls.__dict__:
            cls._copy_context = "processes" not in cls.capabilities
        cls._cooperative = "cooperative" in cls.capabilities

    def __init__(
        self,
        size: int | None = None,
        *,
        retries: int = 0,
        retry_on: Any = None,
        backoff: Any = None,
        max_pending: int | None = None,
    ) -> None:
        size = check_size(size)
        self.size: int = size if size is not None else self.default_size()
        self._state = RUNNING
        self._state_lock = threading.RLock()
        # thread ident -> dispatches in progress there: user code (pickling, a
        # serial task) runs in _dispatch, outside the state lock; close and
        # terminate wait for other threads' dispatches before they stop the workers
        self._dispatching: dict[int, int] = {}
        self._dispatch_ended = threading.Condition(self._state_lock)
        self._timer_: Timer | None = None
        self._init_lifecycle(retries, retry_on, backoff, max_pending)

    @classmethod
    def default_size(cls) -> int:
        return default_thread_count()

    def __repr__(self) -> str:
        state = ("running", "closed", "terminated")[self._state]
        return f"<unifex.executor kind={self.kind!r} size={self.size} {state}>"

    # -- to implement --------------------------------------------------------------

    @abc.abstractmethod
    def _dispatch(self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None) -> None:
        """Hand one task to the workers. Called without the state lock (user
        code may run here: pickling, a ``serial`` task), possibly from several
        threads at once; ``close()`` and ``terminate()`` wait for calls in
        progress before ``_shutdown`` / ``_terminate``."""

    @abc.abstractmethod
    def _shutdown(self, wait: bool) -> None:
        """Stop accepting work (already refused by the base) and, with ``wait``,
        return when every accepted task and its callbacks are done and every
        worker is gone. Called on every ``close()``."""

    @abc.abstractmethod
    def _terminate(self) -> None:
        """Cancel queued tasks, stop running ones where the model can, fail their
        futures with ``TerminatedError``. Called once."""

    def _dispatch_item(self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], per_call: dict[str, Any]) -> None:
        """Hand one input of a ``map`` with one input per task to the workers;
        ``per_call`` as in :meth:`_dispatch_batch`. The default is ``_dispatch``."""
        self._dispatch(fut, fn, args, {}, None)

    def _dispatch_batch(self, fut: Future[Any], fn: Callable[..., Any], batch: list[Any], flat: bool, start: int, per_call: dict[str, Any] | None = None) -> None:
        """Hand one ``map`` batch to the workers; called as ``_dispatch`` is.

        ``batch`` holds the items themselves when ``flat`` (one iterable), else
        argument tuples; ``start`` is the position of its first item in the
        whole ``map``, for messages. ``per_call``: a dict that lives as long as
        the ``map`` call, the same for each of its batches, where a backend may
        keep what it learnt sending the earlier ones (the process kind: the
        shared-memory segments its arguments already took). The future's result is ``(results, error)``
        as :func:`run_items` / :func:`run_chunk` return it. Backends that ship
        batches their own way override this; the default runs the batch as one
        ordinary task."""
        if self._copy_context:
            self._dispatch(fut, copy_context().run, (run_items if flat else run_chunk, fn, batch), {}, None)
        else:
            self._dispatch(fut, run_items if flat else run_chunk, (fn, batch), {}, None)

    #: kinds whose tasks are costly to send batch ``map(chunksize=None)``
    #: adaptively (``_map._Adaptive``) up to ``ceil(n / (4 * size))`` inputs when
    #: the input has a length (``multiprocessing.Pool.map``'s choice; at most
    #: ``map_max_batch``), else ``map_iter_batch``; None: one input per task
    map_iter_batch: ClassVar[int | None] = None
    map_max_batch: ClassVar[int] = 1 << 62

    def _default_chunksize(self, hint: int | None) -> int:
        """The largest batch of ``map(chunksize=None)``; ``hint`` is the input
        length when known. Cheap-to-send kinds keep 1."""
        if self.map_iter_batch is None:
            return 1
        if hint is None:
            return self.map_iter_batch
        return max(1, min(self.map_max_batch, -(-hint // (4 * self.size))))

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

    def _begin_dispatch(self) -> int:
        """Refuse work once closed, else count a dispatch in progress in this
        thread; returns the thread's ident for :meth:`_end_dispatch`.

        No lock (this runs on every submit): the count goes up before the
        state is read, and ``close()`` sets the state before it reads the
        counts, so either the closer sees this dispatch and waits for it, or
        this sees the closed state and backs out."""
        ident = self._count_dispatch()
        if self._state:
            self._end_dispatch(ident)
            raise self._closed_error()
        return ident

    def _count_dispatch(self) -> int:
        """Count a dispatch in progress in this thread (only this thread writes
        its own entry)."""
        ident = get_ident()
        dispatching = self._dispatching
        dispatching[ident] = dispatching.get(ident, 0) + 1
        return ident

    def _end_dispatch(self, ident: int) -> None:
        # only this thread writes its own entry: no lock needed unless someone waits
        dispatching = self._dispatching
        left = dispatching[ident] - 1
        if left:
            dispatching[ident] = left
        else:
            del dispatching[ident]
        if self._state:
            with self._state_lock:
                self._dispatch_ended.notify_all()

    def _await_dispatches(self) -> None:
        """With the state lock held and the state no longer RUNNING: wait until
        no other thread is inside ``_dispatch``, so nothing is handed over
        after the workers were told to stop."""
        me = get_ident()
        # list(): a snapshot, taken at once; other threads add and remove their entries meanwhile
        while any(ident != me for ident in list(self._dispatching)):
            self._dispatch_ended.wait(0.5)

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
        call, call_args = self._wrap_call(fn, args)
        if self._gate is not None or self._retry is not None:
            return self._submit_managed(call, call_args, kwargs, None, None, None)
        fut: Future[T] = Future(self)
        ident = self._begin_dispatch()
        try:
            self._dispatch(fut, call, call_args, kwargs, None)
        finally:
            self._end_dispatch(ident)
        if self._cooperative and _get_running_loop() is not None:
            drive(fut)  # loop.run_in_executor(ex, ...) from a coroutine in this thread
        return fut

    def _wrap_call(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> tuple[Callable[..., Any], tuple[Any, ...]]:
        """What a worker calls for ``fn(*args)``: an ``async def`` function runs to
        completion in an event loop of the worker; on the in-process kinds the
        call runs in a copy of the submitter's context."""
        if is_async(fn):
            args = (fn, *args)
            fn = run_coroutine
        if self._copy_context:
            args = (fn, *args)
            fn = copy_context().run
        return fn, args

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
    ) -> Future[T]:
        """``multiprocessing.Pool.apply_async``: ``callback(result)`` on success,
        ``error_callback(exc)`` on failure, both in the submitting process;
        ``timeout`` seconds per task, counted from when the task starts.
        ``retries``/``retry_on``/``backoff`` (default: the executor's) run a task
        that fails with one of ``retry_on`` again; see ``docs/lifecycle.md``."""
        timeout = check_timeout(timeout)
        fn, call_args = self._wrap_call(func, tuple(args))
        kwargs = dict(kwds) if kwds else {}
        if self._gate is not None or self._retry is not None or retries is not None or retry_on is not None or backoff is not None:
            return self._submit_managed(fn, call_args, kwargs, timeout, (retries, retry_on, backoff), (callback, error_callback))
        fut: Future[T] = Future(self)
        if callback is not None or error_callback is not None:
            on_done = _result_callback(callback, error_callback)
            fut._callbacks = [on_done]
            fut._pool_ran = on_done.ran  # type: ignore[attr-defined]
        ident = self._begin_dispatch()
        try:
            self._dispatch(fut, fn, call_args, kwargs, timeout)
        finally:
            self._end_dispatch(ident)
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
        retries: int | None = None,
        retry_on: Any = None,
        backoff: Any = None,
        progress: Any = False,
    ) -> Iterator[T]:
        """Lazy ``map``: at most ``buffersize`` inputs in flight (default
        ``4 * size`` tasks' worth, so with a batch size picked from the input's
        length every batch is in flight at once, as in
        ``multiprocessing.Pool.map``), results in input order unless
        ``ordered=False``, the first task error raised at its position, and
        ``timeout`` a deadline counted from this call. ``retries``/``retry_on``/
        ``backoff`` as for :meth:`apply_async`; ``progress=True`` shows a progress
        bar, ``progress=callable`` receives ``(done, total)``."""
        policy = self._retry_policy(retries, retry_on, backoff)
        if progress is False or progress is None:
            return map_(self, fn, iterables, timeout, chunksize, ordered, buffersize, policy)
        from ._progress import map_progress

        return map_progress(self, fn, iterables, progress, lambda: map_(self, fn, iterables, timeout, chunksize, ordered, buffersize, policy))

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
            if not terminated and (wait or not self._runs_at_dispatch):
                self._await_dispatches()
        if not terminated:
            self._close_lifecycle(wait)
            self._shutdown(wait)
            if wait and self._retry_timer_used:
                self._stop_timer()  # a retry cancelled during its backoff may still be on the timer

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """:meth:`concurrent.futures.Executor.shutdown`: ``close(wait)``; with
        ``cancel_futures``, tasks not yet started are cancelled first."""
        if cancel_futures:
            with self._state_lock:
                if self._state == RUNNING:
                    self._state = CLOSED
                if not self._runs_at_dispatch:
                    self._await_dispatches()
            self._cancel_queued()
        self.close(wait)

    def terminate(self) -> None:
        """Stop now: cancel queued tasks, stop running ones where the model
        allows, fail their futures with ``TerminatedError``. Idempotent."""
        with self._state_lock:
            if self._state == TERMINATED:
                return
            self._state = TERMINATED
            if not self._runs_at_dispatch:
                self._await_dispatches()
        if self._gate is not None:
            self._gate.wake_all()
        self._terminate()
        self._terminate_lifecycle()
        if self._retry_timer_used:
            self._stop_timer()

    def __enter__(self: T) -> T:  # type: ignore[misc]
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        if exc_type is not None and issubclass(exc_type, (KeyboardInterrupt, SystemExit)):
            self.terminate()
        else:
            self.close(wait=True)

    # -- retries and backpressure (docs/lifecycle.md) -----------------------------

    def _init_lifecycle(self, retries: int, retry_on: Any, backoff: Any, max_pending: int | None) -> None:
        from ._retry import RetryPolicy

        policy = RetryPolicy(retries, retry_on, backoff)
        self._retry: RetryPolicy | None = policy if policy.retries else None
        self._retry_default = policy
        self._retrying: set[Future[Any]] = set()
        self._retrying_lock = threading.Lock()
        self._retry_closed = False
        self._retry_timer_used = False
        check_size(max_pending, "max_pending")
        self._gate: PendingGate | None = PendingGate(max_pending, self) if max_pending is not None else None

    def _retry_policy(self, retries: int | None, retry_on: Any, backoff: Any) -> RetryPolicy | None:
        if retries is None and retry_on is None and backoff is None:
            return self._retry
        from ._retry import RetryPolicy

        return RetryPolicy.resolve(self._retry_default, retries, retry_on, backoff)

    def _submit_managed(
        self,
        fn: Callable[..., T],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
        retry_args: tuple[Any, Any, Any] | None,
        callbacks: tuple[Any, Any] | None,
    ) -> Future[T]:
        """``submit``/``apply_async`` with retries or ``max_pending``."""
        from ._retry import RetryFuture, start_task

        policy = self._retry_policy(*retry_args) if retry_args is not None else self._retry
        gate = self._gate
        if gate is not None:
            gate.acquire()  # blocks while max_pending accepted tasks have not started
        try:
            first: Future[Any] = GatedFuture(self, gate) if gate is not None else Future(self)
            fut: Future[T] = first if policy is None else RetryFuture(self)
            if callbacks is not None and (callbacks[0] is not None or callbacks[1] is not None):
                on_done = _result_callback(*callbacks)
                fut._pool_ran = on_done.ran  # type: ignore[attr-defined]
                fut.add_done_callback(on_done)
            ident = self._begin_dispatch()
            try:
                if policy is None:
                    self._dispatch(first, fn, args, kwargs, timeout)
                else:
                    start_task(self, fut, first, policy, fn, args, kwargs, timeout)  # type: ignore[arg-type]
            finally:
                self._end_dispatch(ident)
        except BaseException:
            if gate is not None and not (first.running() or first.done()):
                gate.release_once(first)  # type: ignore[arg-type]
            raise
        return fut

    def _call_later(self, delay: float, fn: Callable[[Any], object]) -> None:
        """Call ``fn(None)`` after ``delay`` seconds without blocking the caller
        (a retry's backoff). Kinds with their own clock override this."""
        self._retry_timer_used = True
        self._timer.call_at(_monotonic() + delay, fn, None)

    def _track_retrying(self, fut: Future[Any]) -> None:
        with self._retrying_lock:
            self._retrying.add(fut)
        fut.add_done_callback(self._untrack_retrying)

    def _untrack_retrying(self, fut: Future[Any]) -> None:
        with self._retrying_lock:
            self._retrying.discard(fut)

    def _retry_refused(self) -> str | None:
        """Why a retry may not be dispatched now, or None."""
        if self._state == RUNNING:
            return None
        if self._state == TERMINATED:
            return "the executor was terminated"
        if self._retry_closed:
            return "the executor was closed with close(wait=False)"
        return None

    def _close_lifecycle(self, wait: bool) -> None:
        """Before the backend shuts down: let every task waiting to be retried
        finish (close(wait=True)) or refuse its retries (wait=False); wake the
        submitters ``max_pending`` holds back."""
        if self._gate is not None:
            self._gate.wake_all()
        if not wait:
            self._retry_closed = True
            return
        from ._future import wait as wait_futures

        while True:
            with self._retrying_lock:
                pending = list(self._retrying)
            if not pending:
                return
            wait_futures(pending)

    def _terminate_lifecycle(self) -> None:
        """After terminate: a task waiting out a retry's backoff fails with
        ``TerminatedError``."""
        with self._retrying_lock:
            pending = list(self._retrying)
        for fut in pending:
            current = getattr(fut, "_current", None)
            if current is None or current.done():
                fut.try_set_exception(terminated_error())

    # -- helpers (section 4 of the contract); thread helpers by default -----------

    def Lock(self) -> LockLike:
        from ._shared import Lock

        return Lock()

    def RLock(self) -> RLockLike:
        from ._shared import RLock

        return RLock()

    def Event(self) -> EventLike:
        from ._shared import Event

        return Event()

    def Semaphore(self, value: int = 1) -> SemaphoreLike:
        from ._shared import Semaphore

        return Semaphore(value)

    def BoundedSemaphore(self, value: int = 1) -> SemaphoreLike:
        from ._shared import BoundedSemaphore

        return BoundedSemaphore(value)

    def Condition(self, lock: RLockLike | None = None) -> ConditionLike:
        from ._shared import Condition

        return Condition(lock)

    def Queue(self, maxsize: int = 0) -> QueueLike[Any]:
        from ._shared import Queue

        return Queue(maxsize)

    def dict(self, *args: Any, **kwargs: Any) -> MutableMapping[Any, Any]:
        return dict(*args, **kwargs)


def _result_callback(
    callback: Callable[[Any], object] | None, error_callback: Callable[[BaseException], object] | None
) -> Callable[[Future[Any]], None]:
    ran = threading.Event()

    def on_done(fut: Future[Any]) -> None:
        try:
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
        finally:
            ran.set()

    on_done.ran = ran  # type: ignore[attr-defined]  # Future.get/wait/ready wait for it
    return on_done


class PendingGate:
    """``max_pending``: ``submit`` waits (the context-aware wait, so cooperative
    tasks of the thread run meanwhile) while ``limit`` accepted tasks have not
    started."""

    __slots__ = ("_lock", "_owner", "_waiters", "count", "limit")

    def __init__(self, limit: int, owner: BaseExecutor) -> None:
        self.limit = limit
        self.count = 0
        self._lock = threading.Lock()
        self._waiters: list[_wait.Waiter] = []
        self._owner = owner  # so the greenlet scheduler knows the wait is on its executor

    def acquire(self) -> None:
        ex = self._owner
        while True:
            with self._lock:
                if ex._state:
                    raise ex._closed_error()
                if self.count < self.limit:
                    self.count += 1
                    return
                waiter = _wait.current().waiter(self)
                self._waiters.append(waiter)
            try:
                waiter.wait(None)
            finally:
                with self._lock:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)

    def release_once(self, fut: GatedFuture[Any]) -> None:
        """The task of ``fut`` left the queue (started, cancelled or failed)."""
        with self._lock:
            if fut._gate is None:
                return
            fut._gate = None
            self.count -= 1
            waiter = self._waiters.pop(0) if self._waiters else None
        if waiter is not None:
            waiter.notify()

    def wake_all(self) -> None:
        with self._lock:
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.notify()


class GatedFuture(Future[T]):
    """A future whose task holds a ``max_pending`` slot until it starts."""

    __slots__ = ("_gate",)

    def __init__(self, owner: object, gate: PendingGate) -> None:
        super().__init__(owner)
        self._gate: PendingGate | None = gate
        self.add_done_callback(_left_queue)

    def set_running_or_notify_cancel(self) -> bool:
        started = super().set_running_or_notify_cancel()
        gate = self._gate
        if gate is not None:
            gate.release_once(self)
        return started


def _left_queue(fut: Future[Any]) -> None:
    gate = getattr(fut, "_gate", None)
    if gate is not None:
        gate.release_once(fut)  # type: ignore[arg-type]
