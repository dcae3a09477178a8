"""``unifex.Future`` and the functions that wait on futures of any kind.

One light lock-based future serves every backend. Waiting goes through the
context-aware waiter of :mod:`unifex._wait`, so a gevent caller yields to its hub
and a greenlet caller drives its scheduler while it waits.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import CancelledError, InvalidStateError
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, TypeVar

from . import _wait

__all__ = [
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "DoneAndNotDone",
    "Future",
    "as_completed",
    "wait",
]

T = TypeVar("T")
_F = TypeVar("_F")  # the futures waited on: unifex or concurrent.futures ones
logger = logging.getLogger("unifex")

FIRST_COMPLETED = "FIRST_COMPLETED"
FIRST_EXCEPTION = "FIRST_EXCEPTION"
ALL_COMPLETED = "ALL_COMPLETED"

PENDING = 0
RUNNING = 1
CANCELLED = 2
FINISHED = 3
_STATE_NAMES = ("pending", "running", "cancelled", "finished")


def run_callback(callback: Callable[..., object], arg: object) -> None:
    """Run a user callback; one that raises is logged and harms nothing."""
    try:
        callback(arg)
    except BaseException:
        logger.exception("unifex: callback %r raised; the error was logged and ignored", callback)


class Future(Generic[T]):
    """The result of a task: the :class:`concurrent.futures.Future` interface.

    Waiting (``result``, ``exception``) never blocks the other tasks of a
    cooperative backend running in the waiting thread.
    """

    __slots__ = ("__weakref__", "_callbacks", "_exception", "_lock", "_owner", "_result", "_state", "_waiters")

    def __init__(self, owner: object = None) -> None:
        self._state = PENDING
        self._result: Any = None
        self._exception: BaseException | None = None
        self._lock = threading.Lock()
        self._waiters: list[_wait.Waiter] | None = None
        self._callbacks: list[Callable[[Future[T]], object]] | None = None
        #: the executor that made this future (for schedulers telling their own waits apart)
        self._owner = owner

    def __repr__(self) -> str:
        state = self._state
        if state == FINISHED:
            if self._exception is not None:
                return f"<unifex.Future at {id(self):#x} state=finished raised {type(self._exception).__name__}>"
            return f"<unifex.Future at {id(self):#x} state=finished returned {type(self._result).__name__}>"
        return f"<unifex.Future at {id(self):#x} state={_STATE_NAMES[state]}>"

    # -- queries -------------------------------------------------------------------

    def done(self) -> bool:
        return self._state >= CANCELLED

    def running(self) -> bool:
        return self._state == RUNNING

    def cancelled(self) -> bool:
        return self._state == CANCELLED

    def result(self, timeout: float | None = None) -> T:
        """Return the task's value, or raise its exception with its own type.

        Raises ``TimeoutError`` when ``timeout`` seconds pass first and
        ``concurrent.futures.CancelledError`` if the task was cancelled.
        """
        if self._state != FINISHED:
            self._wait(timeout)
        exc = self._exception
        if exc is not None:
            try:
                raise exc
            finally:
                del exc
        return self._result  # type: ignore[no-any-return]

    def exception(self, timeout: float | None = None) -> BaseException | None:
        if self._state != FINISHED:
            self._wait(timeout)
        return self._exception

    def _wait(self, timeout: float | None) -> None:
        if self._state < CANCELLED:
            waiter = _wait.current().waiter(self)
            with self._lock:
                if self._state < CANCELLED:
                    if self._waiters is None:
                        self._waiters = [waiter]
                    else:
                        self._waiters.append(waiter)
                else:
                    waiter = None  # type: ignore[assignment]
            if waiter is not None:
                try:
                    notified = waiter.wait(timeout)
                finally:
                    if self._state < CANCELLED:
                        with self._lock:
                            if self._waiters is not None and waiter in self._waiters:
                                self._waiters.remove(waiter)
                if not notified and self._state < CANCELLED:
                    raise TimeoutError(f"the task did not finish within {timeout} s; it is still {_STATE_NAMES[self._state]}")
        if self._state == CANCELLED:
            raise CancelledError("the task was cancelled before it ran")

    # -- callbacks -----------------------------------------------------------------

    def add_done_callback(self, fn: Callable[[Future[T]], object]) -> None:
        """Call ``fn(future)`` when the future is done (at once if it is)."""
        with self._lock:
            if self._state < CANCELLED:
                if self._callbacks is None:
                    self._callbacks = [fn]
                else:
                    self._callbacks.append(fn)
                return
        run_callback(fn, self)

    # -- settling (used by executors) ----------------------------------------------

    def cancel(self) -> bool:
        """Cancel the task if it has not started; return whether it is cancelled."""
        with self._lock:
            if self._state == CANCELLED:
                return True
            if self._state != PENDING:
                return False
            self._state = CANCELLED
        self._finish()
        return True

    def set_running_or_notify_cancel(self) -> bool:
        """Mark the future running; False if it was cancelled or settled before."""
        with self._lock:
            if self._state == PENDING:
                self._state = RUNNING
                return True
            return False

    def set_result(self, result: T) -> None:
        if not self.try_set_result(result):
            raise InvalidStateError(f"{self!r} is already done")

    def set_exception(self, exception: BaseException) -> None:
        if not self.try_set_exception(exception):
            raise InvalidStateError(f"{self!r} is already done")

    def try_set_result(self, result: T) -> bool:
        """Settle with ``result`` unless already done; return whether it did."""
        with self._lock:
            if self._state >= CANCELLED:
                return False
            self._result = result
            self._state = FINISHED
        self._finish()
        return True

    def try_set_exception(self, exception: BaseException) -> bool:
        """Settle with ``exception`` unless already done; return whether it did."""
        with self._lock:
            if self._state >= CANCELLED:
                return False
            self._exception = exception
            self._state = FINISHED
        self._finish()
        return True

    def _finish(self) -> None:
        # Settled: no further writer touches _waiters/_callbacks after this.
        waiters = self._waiters
        if waiters is not None:
            self._waiters = None
            for waiter in waiters:
                waiter.notify()
        callbacks = self._callbacks
        if callbacks is not None:
            self._callbacks = None
            for callback in callbacks:
                run_callback(callback, self)


if TYPE_CHECKING:  # generic NamedTuples exist at run time from Python 3.11 on

    class DoneAndNotDone(NamedTuple, Generic[_F]):
        done: set[_F]
        not_done: set[_F]

else:

    class DoneAndNotDone(NamedTuple):
        done: set[Any]
        not_done: set[Any]


class _DoneQueue:
    """Collects futures as they finish, for a waiter in any context."""

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
    done = {f for f in waited if f.done()}
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
        for f in not_done:
            f.add_done_callback(queue)
        while not satisfied():
            f = queue.get(_remaining(end))
            if f is None:
                break
            done.add(f)
            not_done.discard(f)
    return DoneAndNotDone(done, not_done)


def as_completed(fs: Iterable[Any], timeout: float | None = None) -> Iterator[Any]:
    """Yield futures of any kind as they finish; ``TimeoutError`` when
    ``timeout`` seconds (counted from the call) pass first."""
    end = None if timeout is None else _wait.now() + timeout
    unique = list(dict.fromkeys(fs))  # keep the caller's order: finished futures come out in it
    return _as_completed(unique, end)


def _as_completed(fs: list[Any], end: float | None) -> Iterator[Any]:
    total = len(fs)
    done: list[Any] = []
    pending: set[Any] = set()
    for f in fs:
        if f.done():
            done.append(f)
        else:
            pending.add(f)
    yield from done
    if not pending:
        return
    queue = _DoneQueue(_common_owner(pending))
    for f in pending:
        f.add_done_callback(queue)
    while pending:
        f = queue.get(_remaining(end))
        if f is None:
            raise TimeoutError(f"{len(pending)} (of {total}) futures unfinished after the timeout")
        if f in pending:
            pending.discard(f)
            yield f
