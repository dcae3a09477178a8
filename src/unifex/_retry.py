"""Retries, written once for every kind: a task that fails with one of the
``retry_on`` types runs again after an exponential backoff with jitter, up to
``retries`` times.

The caller holds a :class:`RetryFuture`; each attempt is an ordinary future
handed to the backend's ``_dispatch`` (or ``_dispatch_batch`` for a ``map``
batch). When an attempt fails with a retryable error, the next one is
scheduled with the executor's ``_call_later`` (the base :class:`~unifex._base.Timer`
thread, or the kind's own clock: the ``greenlet`` kind's virtual clock skips
the wait), never by blocking the thread that settled the attempt.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from concurrent.futures import CancelledError
from contextvars import Context
from typing import TYPE_CHECKING, Any, TypeVar, final

from ._errors import ExecutorClosedError, SerializationError, TaskTimeoutError, TerminatedError, WorkerCrashedError
from ._future import Future

if TYPE_CHECKING:
    from ._base import BaseExecutor

__all__ = ["DEFAULT_RETRY_ON", "RetryFuture", "RetryPolicy", "start_batch", "start_task"]

T = TypeVar("T")

#: what ``retries=N`` retries unless ``retry_on`` says otherwise: a worker crash,
#: a per-task timeout, an ``OSError`` (I/O, network, ``TimeoutError``)
DEFAULT_RETRY_ON: tuple[type[BaseException], ...] = (WorkerCrashedError, TaskTimeoutError, OSError)
#: never retried, whatever ``retry_on`` says: the executor stopped, or running
#: again cannot help
_NEVER = (TerminatedError, CancelledError, ExecutorClosedError, SerializationError)
#: the longest backoff, in seconds, before jitter
MAX_BACKOFF = 60.0
DEFAULT_BACKOFF = 0.1


@final
class RetryPolicy:
    """``retries``, ``retry_on`` and ``backoff``, checked once."""

    __slots__ = ("backoff", "retries", "retry_on")

    def __init__(self, retries: int, retry_on: Any = None, backoff: Any = None) -> None:
        if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
            raise ValueError(f"retries must be a non-negative int, not {retries!r}")
        if retry_on is None:
            retry_on = DEFAULT_RETRY_ON
        elif isinstance(retry_on, type):
            retry_on = (retry_on,)
        if not isinstance(retry_on, tuple) or not all(isinstance(t, type) and issubclass(t, BaseException) for t in retry_on):
            raise TypeError(f"retry_on must be an exception type or a tuple of them, not {retry_on!r}")
        if backoff is None:
            backoff = DEFAULT_BACKOFF
        if not callable(backoff) and (isinstance(backoff, bool) or not isinstance(backoff, (int, float)) or backoff < 0):
            raise ValueError(
                f"backoff must be a non-negative number of seconds (the first wait, doubled after each attempt) "
                f"or a callable(attempt) -> seconds, not {backoff!r}"
            )
        self.retries = retries
        self.retry_on: tuple[type[BaseException], ...] = retry_on
        self.backoff: float | Callable[[int], float] = backoff

    @classmethod
    def resolve(cls, default: RetryPolicy | None, retries: int | None, retry_on: Any, backoff: Any) -> RetryPolicy | None:
        """The policy of one call: its own arguments over the executor's default;
        None when nothing is retried."""
        if retries is None and retry_on is None and backoff is None:
            return default if default is not None and default.retries else None
        base_retries = default.retries if default is not None else 0
        policy = cls(
            base_retries if retries is None else retries,
            retry_on if retry_on is not None else (default.retry_on if default is not None else None),
            backoff if backoff is not None else (default.backoff if default is not None else None),
        )
        return policy if policy.retries else None

    def retryable(self, exc: BaseException) -> bool:
        return isinstance(exc, self.retry_on) and not isinstance(exc, _NEVER)

    def delay(self, failed: int) -> float:
        """Seconds to wait after the ``failed``-th failed attempt: the base
        doubled each time, capped, times a jitter in [0.5, 1)."""
        backoff = self.backoff
        if callable(backoff):
            return max(0.0, float(backoff(failed)))
        if not backoff:
            return 0.0
        return float(min(MAX_BACKOFF, backoff * 2.0 ** (failed - 1)) * random.uniform(0.5, 1.0))


class RetryFuture(Future[T]):
    """The future of a task run with retries.

    ``attempts`` is how many attempts have finished so far, ``errors`` the
    exceptions of the failed ones, oldest first. The last error is raised with
    the earlier ones chained as its ``__context__`` (the oldest at the bottom)."""

    __slots__ = ("_current", "_first", "attempts", "errors")

    def __init__(self, owner: object = None) -> None:
        super().__init__(owner)
        self.attempts = 0
        self.errors: list[BaseException] = []
        self._current: Future[Any] | None = None
        self._first: Future[Any] | None = None

    def running(self) -> bool:
        current = self._current
        return not self.done() and current is not None and (current.running() or current.done())

    def cancel(self) -> bool:
        """Cancel the task unless an attempt is running; a task waiting out its
        backoff is cancelled."""
        if self.done():
            return self.cancelled()
        current = self._current
        if current is not None and not current.done() and not current.cancel():
            return False
        return Future.cancel(self)


def _chain(exc: BaseException, earlier: list[BaseException]) -> BaseException:
    """Hang the earlier attempts' errors below ``exc``'s own chain, oldest
    deepest, and say so in a note."""
    seen: set[int] = set()
    top = exc
    for prev in reversed(earlier):
        if prev is top or id(prev) in seen:
            continue
        # the bottom of top's own chain (its cause, e.g. a remote traceback, or context)
        node = top
        for _ in range(100):
            seen.add(id(node))
            nxt = node.__cause__ or node.__context__
            if nxt is None or id(nxt) in seen:
                break
            node = nxt
        if node is not prev and id(prev) not in seen:
            node.__context__ = prev
        top = prev
    if earlier and hasattr(exc, "add_note"):
        kinds = ", ".join(type(e).__name__ for e in earlier)
        exc.add_note(f"unifex: attempt {len(earlier) + 1} of this task; the earlier attempts failed with: {kinds} (chained as __context__)")
    return exc


class _Attempts:
    """What the attempts of one task share."""

    __slots__ = ("ex", "failed_here", "outer", "policy")

    def __init__(self, ex: BaseExecutor, outer: RetryFuture[Any], policy: RetryPolicy) -> None:
        self.ex = ex
        self.outer = outer
        self.policy = policy
        self.failed_here = 0  # failed attempts counted against ``retries``

    def launch(self, inner: Future[Any]) -> None:
        """Dispatch one attempt; called with the executor's state lock held."""
        if self.outer._first is None:
            self.outer._first = inner
        self.outer._current = inner
        inner.add_done_callback(self._attempt_done)
        self._dispatch(inner)

    def _dispatch(self, inner: Future[Any]) -> None:
        raise NotImplementedError

    def _attempt_done(self, inner: Future[Any]) -> None:
        raise NotImplementedError

    def _retry_or_fail(self, exc: BaseException, fail: Callable[[BaseException], object]) -> None:
        outer = self.outer
        policy = self.policy
        self.failed_here += 1
        if policy.retryable(exc) and self.failed_here <= policy.retries:
            why = self.ex._retry_refused()
            if why is None:
                outer.errors.append(exc)
                self.ex._call_later(policy.delay(self.failed_here), self._relaunch)
                return
            if hasattr(exc, "add_note"):
                exc.add_note(f"unifex: not retried: {why}")
        fail(_chain(exc, outer.errors))

    def _relaunch(self, _arg: object = None) -> None:
        outer = self.outer
        if outer.done():
            return  # cancelled or terminated while waiting out the backoff
        ex = self.ex
        try:
            with ex._state_lock:
                why = ex._retry_refused()
                ident = ex._count_dispatch() if why is None else None
            if ident is not None:
                try:  # the hand-over runs user code (pickling): outside the state lock
                    self.launch(Future(ex))
                finally:
                    ex._end_dispatch(ident)
                return
        except BaseException as exc:
            self._give_up(exc)
            return
        last = outer.errors.pop()
        if hasattr(last, "add_note"):
            last.add_note(f"unifex: not retried: {why}")
        self._give_up(last)

    def _give_up(self, exc: BaseException) -> None:
        self.outer.try_set_exception(_chain(exc, self.outer.errors))


@final
class _TaskAttempts(_Attempts):
    __slots__ = ("args", "fn", "kwargs", "timeout")

    def __init__(
        self,
        ex: BaseExecutor,
        outer: RetryFuture[Any],
        policy: RetryPolicy,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> None:
        super().__init__(ex, outer, policy)
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.timeout = timeout

    def _dispatch(self, inner: Future[Any]) -> None:
        fn = self.fn
        if inner is not self.outer._first:
            ctx = getattr(fn, "__self__", None)
            if isinstance(ctx, Context):
                # the submitter's context copy may still be entered by a timed-out
                # attempt running on in its thread: each attempt gets its own copy
                fn = ctx.copy().run
        self.ex._dispatch(inner, fn, self.args, self.kwargs, self.timeout)

    def _attempt_done(self, inner: Future[Any]) -> None:
        outer = self.outer
        outer.attempts += 1
        if outer.done():
            return
        if inner.cancelled():
            Future.cancel(outer)
            return
        exc = inner._exception
        if exc is None:
            outer.try_set_result(inner._result)
        else:
            self._retry_or_fail(exc, outer.try_set_exception)


@final
class _BatchAttempts(_Attempts):
    """A ``map`` batch: an attempt that stops at an item's retryable error is
    followed by one over the items from there; ``retries`` counts per item."""

    __slots__ = ("failed_at", "flat", "fn", "items", "results", "start")

    def __init__(self, ex: BaseExecutor, outer: RetryFuture[Any], policy: RetryPolicy, fn: Callable[..., Any], items: list[Any], flat: bool, start: int) -> None:
        super().__init__(ex, outer, policy)
        self.fn = fn
        self.items = items
        self.flat = flat
        self.start = start
        self.results: list[Any] = []
        self.failed_at = -1

    def _dispatch(self, inner: Future[Any]) -> None:
        done = len(self.results)
        self.ex._dispatch_batch(inner, self.fn, self.items[done:] if done else self.items, self.flat, self.start + done)

    def _attempt_done(self, inner: Future[Any]) -> None:
        outer = self.outer
        outer.attempts += 1
        if outer.done():
            return
        if inner.cancelled():
            Future.cancel(outer)
            return
        exc = inner._exception
        if exc is None:
            values, exc = inner._result
            self.results.extend(values)
            if exc is None:
                outer.try_set_result((self.results, None))
                return
        position = len(self.results)
        if position > self.failed_at:  # got further: this item has all its retries
            self.failed_at = position
            self.failed_here = 0
        self._retry_or_fail(exc, self._finish_with)

    def _finish_with(self, exc: BaseException) -> None:
        self.outer.try_set_result((self.results, exc))

    def _give_up(self, exc: BaseException) -> None:
        self._finish_with(_chain(exc, self.outer.errors))


def start_task(
    ex: BaseExecutor,
    outer: RetryFuture[Any],
    first: Future[Any],
    policy: RetryPolicy,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
    timeout: float | None,
) -> None:
    """Run ``fn`` with retries, settling ``outer``; ``first`` is the first
    attempt's future. Called with the executor's state lock held."""
    _TaskAttempts(ex, outer, policy, fn, args, kwargs, timeout).launch(first)
    ex._track_retrying(outer)  # after the first dispatch: one that raises leaves nothing to wait for


def start_batch(ex: BaseExecutor, outer: RetryFuture[Any], policy: RetryPolicy, fn: Callable[..., Any], items: list[Any], flat: bool, start: int) -> None:
    """Run one ``map`` batch with retries; ``outer`` gets ``(results, error)``.
    Called with the executor's state lock held."""
    _BatchAttempts(ex, outer, policy, fn, items, flat, start).launch(Future(ex))
    ex._track_retrying(outer)
