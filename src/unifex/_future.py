"""``unifex.Future`` (a :class:`concurrent.futures.Future`) and the functions
that wait on futures of any kind.

One light lock-based future serves every backend. Waiting goes through the
context-aware waiter of :mod:`unifex._wait`, so a gevent caller yields to its hub
and a greenlet caller drives its scheduler while it waits. The internals that
:func:`concurrent.futures.wait`, ``as_completed`` and :mod:`asyncio` read
(``_condition``, ``_waiters``, ``_state``, ``_result``, ``_exception``,
``_done_callbacks``) are kept consistent, the costly ones made on first use.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import multiprocessing
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import CancelledError, InvalidStateError
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from . import _wait

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "DoneAndNotDone",
    "Future",
    "PoolTimeoutError",
    "as_completed",
    "wait",
]

T = TypeVar("T")
_F = TypeVar("_F")  # the futures waited on: unifex or concurrent.futures ones
logger = logging.getLogger("unifex")

FIRST_COMPLETED = "FIRST_COMPLETED"
FIRST_EXCEPTION = "FIRST_EXCEPTION"
ALL_COMPLETED = "ALL_COMPLETED"

# Internal states, ordered: done() is ``_st >= CANCELLED``. A unifex future that
# is cancelled notifies every waiter at once, so cancel() goes straight to
# CANCELLED_AND_NOTIFIED; plain CANCELLED only appears when a caller writes
# ``_state`` itself, as the stdlib's tests do.
PENDING = 0
RUNNING = 1
CANCELLED = 2
CANCELLED_AND_NOTIFIED = 3
FINISHED = 4
_CF_STATES = ("PENDING", "RUNNING", "CANCELLED", "CANCELLED_AND_NOTIFIED", "FINISHED")
_FROM_CF = {name: i for i, name in enumerate(_CF_STATES)}
_STATE_NAMES = ("pending", "running", "cancelled", "cancelled", "finished")


class PoolTimeoutError(multiprocessing.TimeoutError, TimeoutError):
    """``get(timeout)`` ran out: both :class:`multiprocessing.TimeoutError`
    (what ``multiprocessing.Pool`` code catches) and the builtin ``TimeoutError``."""


def run_callback(callback: Callable[..., object], arg: object) -> None:
    """Run a user callback; one that raises is logged and harms nothing."""
    try:
        callback(arg)
    except BaseException:
        logger.exception("exception calling callback for %r (unifex logged the error and ignored it)", arg)


class _CoopEvent:
    """Stands in for the ``threading.Event`` of a ``concurrent.futures`` waiter
    installed from a cooperative context, so ``concurrent.futures.wait`` there
    lets the gevent hub / greenlet scheduler run the tasks it waits for."""

    __slots__ = ("_flag", "_owner", "_waiter")

    def __init__(self, owner: object) -> None:
        self._flag = False
        self._waiter: _wait.Waiter | None = None
        self._owner = owner

    def is_set(self) -> bool:
        return self._flag

    def set(self) -> None:
        self._flag = True
        waiter = self._waiter
        if waiter is not None:
            waiter.notify()

    def clear(self) -> None:
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        if self._flag:
            return True
        waiter = self._waiter = _wait.current().waiter(self)
        try:
            if not self._flag:
                waiter.wait(timeout)
        finally:
            self._waiter = None
        return self._flag


class _WaiterList(list):  # type: ignore[type-arg]
    """``Future._waiters``: the ``concurrent.futures`` waiters of one future."""

    __slots__ = ("_owner",)
    _owner: object

    def append(self, waiter: Any) -> None:
        # concurrent.futures.wait/as_completed block on waiter.event; from a
        # cooperative context, make that wait yield instead of blocking the thread.
        if _wait.current() is not _wait.THREAD and type(getattr(waiter, "event", None)) is threading.Event:
            waiter.event = _CoopEvent(self._owner)
        super().append(waiter)


class Future(cf.Future[T]):
    """The result of a task: a :class:`concurrent.futures.Future`, so
    ``concurrent.futures.wait``, ``as_completed`` and :mod:`asyncio` accept it,
    and ``await fut`` works in a coroutine.

    Waiting (``result``, ``exception``) never blocks the other tasks of a
    cooperative backend running in the waiting thread. It also answers the
    ``multiprocessing.pool.AsyncResult`` calls ``get``, ``ready``,
    ``successful`` and ``wait``.
    """

    __slots__ = ("_callbacks", "_cfw", "_cond", "_exception", "_lock", "_owner", "_pool_ran", "_result", "_st", "_uwaiters")

    def __init__(self, owner: object = None) -> None:
        self._st = PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._lock = threading.Lock()
        self._uwaiters: list[_wait.Waiter] | None = None
        self._callbacks: list[Callable[[Future[T]], object]] | None = None
        self._cfw: _WaiterList | None = None  # concurrent.futures waiters, made on first use
        self._cond: threading.Condition | None = None
        #: the executor that made this future (for schedulers telling their own waits apart)
        self._owner = owner
        #: set once apply_async/map_async's callback has run (None: no such callback)
        self._pool_ran: threading.Event | None = None

    def __repr__(self) -> str:
        state = self._st
        if state == FINISHED:
            if self._exception is not None:
                return f"<Future at {id(self):#x} state=finished raised {type(self._exception).__name__}>"
            return f"<Future at {id(self):#x} state=finished returned {type(self._result).__name__}>"
        return f"<Future at {id(self):#x} state={_STATE_NAMES[state]}>"

    # -- the concurrent.futures internals, kept consistent ------------------------------

    @property
    def _state(self) -> str:  # type: ignore[override]
        return _CF_STATES[self._st]

    @_state.setter
    def _state(self, value: str) -> None:
        self._st = _FROM_CF[value]

    @property
    def _condition(self) -> threading.Condition:  # type: ignore[override]
        cond = self._cond
        if cond is None:
            cond = self._cond = _Condition(self)
        return cond

    @property
    def _waiters(self) -> list[Any]:  # type: ignore[override]
        waiters = self._cfw
        if waiters is None:
            waiters = _WaiterList()
            waiters._owner = self._owner
            self._cfw = waiters
        return waiters

    @property
    def _done_callbacks(self) -> list[Callable[[Future[T]], object]]:  # type: ignore[override]
        with self._lock:
            if self._callbacks is None:
                self._callbacks = []
            return self._callbacks

    # -- queries -------------------------------------------------------------------

    def done(self) -> bool:
        return self._st >= CANCELLED

    def running(self) -> bool:
        return self._st == RUNNING

    def cancelled(self) -> bool:
        return CANCELLED <= self._st <= CANCELLED_AND_NOTIFIED

    def result(self, timeout: float | None = None) -> T:
        """Return the task's value, or raise its exception with its own type.

        Raises ``TimeoutError`` when ``timeout`` seconds pass first and
        ``concurrent.futures.CancelledError`` if the task was cancelled.
        """
        if self._st != FINISHED:
            self._wait(timeout)
        exc = self._exception
        if exc is not None:
            try:
                raise exc
            finally:
                del exc, self
        return self._result  # type: ignore[no-any-return]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._st != FINISHED:
            self._wait(timeout)
        return self._exception

    def _wait(self, timeout: float | None) -> None:
        if self._st < CANCELLED:
            waiter = _wait.current().waiter(self)
            with self._lock:
                if self._st < CANCELLED:
                    if self._uwaiters is None:
                        self._uwaiters = [waiter]
                    else:
                        self._uwaiters.append(waiter)
                else:
                    waiter = None  # type: ignore[assignment]
            if waiter is not None:
                try:
                    notified = waiter.wait(timeout)
                finally:
                    if self._st < CANCELLED:
                        with self._lock:
                            if self._uwaiters is not None and waiter in self._uwaiters:
                                self._uwaiters.remove(waiter)
                if not notified and self._st < CANCELLED:
                    raise TimeoutError(f"the task did not finish within {timeout} s; it is still {_STATE_NAMES[self._st]}")
        if self._st != FINISHED:
            raise CancelledError("the task was cancelled before it ran")

    # -- asyncio -------------------------------------------------------------------

    def __await__(self) -> Generator[Any, None, T]:
        """``await fut`` in a coroutine: the event loop runs on while the task
        does; cancelling the awaiting asyncio task cancels this one (see
        :meth:`BaseExecutor._stop_running` for a task already running)."""
        from ._aio import wrap

        return wrap(self).__await__()  # type: ignore[no-any-return]

    # -- multiprocessing.pool.AsyncResult ---------------------------------------------

    def get(self, timeout: float | None = None) -> T:
        """``AsyncResult.get``: the result; :class:`PoolTimeoutError` (a
        ``multiprocessing.TimeoutError``) when ``timeout`` passes first."""
        if self._st < CANCELLED:
            try:
                self._wait(timeout)
            except TimeoutError as exc:
                if not self.done():
                    raise PoolTimeoutError(str(exc)) from None
            except CancelledError:
                pass
        self._pool_callback_ran(timeout)
        return self.result()

    def ready(self) -> bool:
        """``AsyncResult.ready``: whether the task is done (and its
        ``callback``/``error_callback`` has run)."""
        return self._st >= CANCELLED and (self._pool_ran is None or self._pool_ran.is_set())

    def successful(self) -> bool:
        """``AsyncResult.successful``: whether the task returned without raising;
        ``ValueError`` if it is not done yet."""
        if self._st < CANCELLED:
            raise ValueError(f"{self!r} not ready: call successful() once ready() is True")
        return self._st == FINISHED and self._exception is None

    def wait(self, timeout: float | None = None) -> None:
        """``AsyncResult.wait``: return when the task is done or ``timeout`` passed."""
        try:
            self._wait(timeout)
        except (TimeoutError, CancelledError):
            pass
        if self._st >= CANCELLED:
            self._pool_callback_ran(timeout)

    def _pool_callback_ran(self, timeout: float | None) -> None:
        # as in multiprocessing, get()/wait() return once the callback has run
        ran = self._pool_ran
        if ran is not None and not ran.is_set() and _wait.current() is _wait.THREAD:
            ran.wait(timeout)

    # -- callbacks -----------------------------------------------------------------

    def add_done_callback(self, fn: Callable[[Future[T]], object]) -> None:  # type: ignore[override]
        """Call ``fn(future)`` when the future is done (at once if it is)."""
        with self._lock:
            if self._st < CANCELLED:
                if self._callbacks is None:
                    self._callbacks = [fn]
                else:
                    self._callbacks.append(fn)
                return
        run_callback(fn, self)

    def _remove_done_callback(self, fn: Callable[[Future[T]], object]) -> None:
        with self._lock:
            callbacks = self._callbacks
            if callbacks is not None:
                try:
                    callbacks.remove(fn)
                except ValueError:
                    pass

    # -- settling (used by executors) ----------------------------------------------

    def cancel(self) -> bool:
        """Cancel the task if it has not started; return whether it is cancelled."""
        with self._lock:
            state = self._st
            if state in (CANCELLED, CANCELLED_AND_NOTIFIED):
                return True
            if state != PENDING:
                return False
            self._st = CANCELLED_AND_NOTIFIED
            cf_waiters = list(self._cfw) if self._cfw else None
        self._finish(cf_waiters)
        return True

    def set_running_or_notify_cancel(self) -> bool:
        """Mark the future running; False if it was cancelled or settled before."""
        with self._lock:
            state = self._st
            if state == PENDING:
                self._st = RUNNING
                return True
            if state != CANCELLED:
                return False
            # cancelled by a caller that wrote _state: notify concurrent.futures waiters now
            self._st = CANCELLED_AND_NOTIFIED
            cf_waiters = list(self._cfw) if self._cfw else None
        if cf_waiters:
            for w in cf_waiters:
                w.add_cancelled(self)
        return False

    def set_result(self, result: T) -> None:
        if not self.try_set_result(result):
            raise InvalidStateError(f"{self._state}: {self!r}")

    def set_exception(self, exception: BaseException | None) -> None:
        if exception is None:
            raise TypeError("set_exception() needs an exception, not None")
        if not self.try_set_exception(exception):
            raise InvalidStateError(f"{self._state}: {self!r}")

    def try_set_result(self, result: T) -> bool:
        """Settle with ``result`` unless already done; return whether it did."""
        with self._lock:
            if self._st >= CANCELLED:
                return False
            self._result = result
            self._st = FINISHED
            cf_waiters = list(self._cfw) if self._cfw else None
        self._finish(cf_waiters)
        return True

    def try_set_exception(self, exception: BaseException) -> bool:
        """Settle with ``exception`` unless already done; return whether it did."""
        with self._lock:
            if self._st >= CANCELLED:
                return False
            self._exception = exception
            self._st = FINISHED
            cf_waiters = list(self._cfw) if self._cfw else None
        self._finish(cf_waiters)
        return True

    def _finish(self, cf_waiters: list[Any] | None) -> None:
        # Settled: no further writer touches _uwaiters/_callbacks after this.
        waiters = self._uwaiters
        if waiters is not None:
            self._uwaiters = None
            for waiter in waiters:
                waiter.notify()
        if cf_waiters:
            self._notify_cf(cf_waiters)
        cond = self._cond
        if cond is not None:
            with cond:
                cond.notify_all()
        callbacks = self._callbacks
        if callbacks is not None:
            self._callbacks = None
            for callback in callbacks:
                run_callback(callback, self)

    def _notify_cf(self, cf_waiters: list[Any]) -> None:
        state = self._st
        for w in cf_waiters:
            if state != FINISHED:
                w.add_cancelled(self)
            elif self._exception is not None:
                w.add_exception(self)
            else:
                w.add_result(self)


class _Condition(threading.Condition):
    """``Future._condition``: a condition over the future's own lock, so that
    ``concurrent.futures`` code holding it excludes settling."""

    def __init__(self, fut: Future[Any]) -> None:
        super().__init__(fut._lock)
        self._fut = fut
        self._notifying = False

    def notify_all(self) -> None:
        super().notify_all()
        fut = self._fut
        if not self._notifying and fut._st >= CANCELLED_AND_NOTIFIED and (fut._uwaiters or fut._callbacks):
            # someone wrote _state/_result under _condition and notified, as the
            # stdlib's own tests do: wake the unifex waiters as settling would have
            self._notifying = True
            waiters, fut._uwaiters = fut._uwaiters, None
            for waiter in waiters or ():
                waiter.notify()
            self._notifying = False


if TYPE_CHECKING:  # generic NamedTuples exist at run time from Python 3.11 on

    class DoneAndNotDone(NamedTuple, Generic[_F]):
        done: set[_F]
        not_done: set[_F]

else:

    class DoneAndNotDone(NamedTuple):
        done: set[Any]
        not_done: set[Any]


class _DoneQueue:
    """Collects futures as they finish, for a waiter in any context. It is both
    a done-callback and a ``concurrent.futures`` waiter (``add_result`` ...)."""

    def __init__(self, owner: object = None) -> None:
        self._lock = threading.Lock()
        self._done: deque[Any] = deque()
        self._waiter: _wait.Waiter | None = None
        self._owner = owner

    def __call__(self, fut: Any) -> None:
        with self._lock:
            self._done.append(fut)
            waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.notify()

    add_result = add_exception = add_cancelled = __call__

    def get(self, timeout: float | None) -> Any:
        """The next finished future, or None when ``timeout`` passes first."""
        with self._lock:
            if self._done:
                return self._done.popleft()
            waiter = self._waiter = _wait.current().waiter(self)
        waiter.wait(timeout)
        with self._lock:
            self._waiter = None
            return self._done.popleft() if self._done else None

    def install(self, fut: Any) -> None:
        """Be told when ``fut`` is done (at once if it is)."""
        if isinstance(fut, Future):
            with fut._lock:
                if fut._st < CANCELLED_AND_NOTIFIED:
                    if fut._cfw is None:
                        fut._waiters.append(self)
                    else:
                        fut._cfw.append(self)
                    return
        else:  # a concurrent.futures future: its own waiter protocol
            with fut._condition:
                if fut._state not in (cf._base.CANCELLED_AND_NOTIFIED, cf._base.FINISHED):
                    fut._waiters.append(self)
                    return
        self(fut)

    def uninstall(self, fut: Any) -> None:
        with fut._lock if isinstance(fut, Future) else fut._condition:
            waiters = fut._cfw if isinstance(fut, Future) else fut._waiters
            if waiters:
                try:
                    waiters.remove(self)
                except ValueError:
                    pass


def _settled(f: Any) -> bool:
    """Done as ``concurrent.futures.wait`` counts it (a stdlib future cancelled
    but not yet notified is not)."""
    if isinstance(f, Future):
        return f._st >= CANCELLED_AND_NOTIFIED
    return f._state in (cf._base.CANCELLED_AND_NOTIFIED, cf._base.FINISHED)  # type: ignore[no-any-return]


def _common_owner(fs: Iterable[Any]) -> object:
    owners = {getattr(f, "_owner", None) for f in fs}
    return owners.pop() if len(owners) == 1 else None


def _remaining(end: float | None) -> float | None:
    return None if end is None else max(0.0, end - _wait.now())


def wait(fs: Iterable[_F], timeout: float | None = None, return_when: str = ALL_COMPLETED) -> DoneAndNotDone[_F]:
    """Wait for futures of any kind (mixed kinds too, and
    ``concurrent.futures`` futures), as :func:`concurrent.futures.wait`."""
    if return_when not in (FIRST_COMPLETED, FIRST_EXCEPTION, ALL_COMPLETED):
        raise ValueError(f"return_when must be FIRST_COMPLETED, FIRST_EXCEPTION or ALL_COMPLETED, not {return_when!r}")
    end = None if timeout is None else _wait.now() + timeout
    waited: set[Any] = set(fs)
    done = {f for f in waited if _settled(f)}
    not_done = waited - done

    def satisfied() -> bool:
        if not not_done:
            return True
        if return_when == FIRST_COMPLETED:
            return bool(done)
        if return_when == FIRST_EXCEPTION:
            return any(not f.cancelled() and f.exception() is not None for f in done)
        return False

    if not satisfied():
        queue = _DoneQueue(_common_owner(not_done))
        waiting = list(not_done)
        for f in waiting:
            queue.install(f)
        try:
            while not satisfied():
                f = queue.get(_remaining(end))
                if f is None:
                    break
                if f in not_done:
                    done.add(f)
                    not_done.discard(f)
        finally:
            for f in waiting:
                queue.uninstall(f)
    return DoneAndNotDone(done, not_done)


def as_completed(fs: Iterable[Any], timeout: float | None = None) -> Iterator[Any]:
    """Yield futures of any kind as they finish; ``TimeoutError`` when
    ``timeout`` seconds (counted from the call) pass first. A future yielded is
    no longer referenced by the iterator."""
    end = None if timeout is None else _wait.now() + timeout
    unique = list(dict.fromkeys(fs))  # keep the caller's order: finished futures come out in it
    return _as_completed(unique, end)


def _as_completed(fs: list[Any], end: float | None) -> Iterator[Any]:
    # comprehensions only: no local of this generator keeps a yielded future alive
    total = len(fs)
    settled = [_settled(f) for f in fs]
    done = deque([f for f, s in zip(fs, settled, strict=True) if s])
    pending = {f for f, s in zip(fs, settled, strict=True) if not s}
    fs.clear()
    while done:
        yield done.popleft()
    if not pending:
        return
    queue = _DoneQueue(_common_owner(pending))
    for f in list(pending):
        queue.install(f)
    del f
    try:
        while pending:
            got = [queue.get(_remaining(end))]
            if got[0] is None:
                raise TimeoutError(f"{len(pending)} (of {total}) futures unfinished")
            if got[0] in pending:
                pending.discard(got[0])
                queue.uninstall(got[0])
                yield got.pop()
            got.clear()
    finally:
        for f in pending:
            queue.uninstall(f)
