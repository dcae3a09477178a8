"""The lazy, bounded ``map`` every kind shares, written once on top of the
backend hooks ``_dispatch`` (one task per input) and ``_dispatch_batch``
(a batch of inputs per task), and the batch runners that workers execute."""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextvars import copy_context
from typing import TYPE_CHECKING, Any, TypeVar

from . import _wait
from ._errors import SerializationError
from ._future import Future, _DoneQueue

if TYPE_CHECKING:
    from ._base import BaseExecutor
    from ._retry import RetryPolicy

__all__ = ["TARGET_BATCH_SECONDS", "map_", "run_chunk", "run_items", "start_map"]

T = TypeVar("T")

#: ``map(chunksize=None)`` on the kinds that batch: the time one batch should
#: take once the sizes have adapted (joblib aims at 0.2-2 s per batch)
TARGET_BATCH_SECONDS = 0.2


def map_(
    ex: BaseExecutor,
    fn: Callable[..., T],
    iterables: tuple[Iterable[Any], ...],
    timeout: float | None,
    chunksize: int | None,
    ordered: bool,
    buffersize: int | None,
    retry: RetryPolicy | None = None,
) -> Iterator[T]:
    """``Executor.map``; see its docstring."""
    return start_map(ex, fn, iterables, timeout, chunksize, ordered, buffersize, retry).run()


def start_map(
    ex: BaseExecutor,
    fn: Callable[..., T],
    iterables: tuple[Iterable[Any], ...],
    timeout: float | None,
    chunksize: int | None,
    ordered: bool,
    buffersize: int | None,
    retry: RetryPolicy | None = None,
) -> _MapRun:
    """Check the arguments and start the first tasks of a ``map``."""
    from ._base import check_size

    if not iterables:
        raise TypeError("map() needs at least one iterable")
    check_size(chunksize, "chunksize")
    check_size(buffersize, "buffersize")
    timeout = _check_map_timeout(timeout)
    if ex._state:
        raise ex._closed_error()
    end = None if timeout is None else _wait.now() + timeout
    fn = ex._task_fn(fn)
    if chunksize is None:
        hint = None
        if all(hasattr(it, "__len__") for it in iterables):
            hint = min(len(it) for it in iterables)  # type: ignore[arg-type]
        chunksize = ex._default_chunksize(hint)
        if chunksize > 1:
            if buffersize is None and hint is None:
                # an iterator of unknown length: read no further ahead than a
                # map with one input per task would
                buffersize = 2 * ex.size * chunksize
            return _adaptive_map(ex, fn, iterables, end, ordered, buffersize, chunksize, retry)
    if buffersize is None:
        buffersize = 4 * ex.size * chunksize
    chunksize = min(chunksize, buffersize)
    in_flight = max(1, buffersize // chunksize)
    if chunksize > 1 and len(iterables) == 1:
        return _MapRun(ex, fn, _batched(iter(iterables[0]), chunksize), in_flight, end, ordered, run_items, retry=retry)
    inputs: Iterator[tuple[Any, ...]] = zip(*iterables, strict=False)
    if chunksize == 1:
        return _MapRun(ex, fn, inputs, in_flight, end, ordered, None, retry=retry)
    return _MapRun(ex, fn, _batched(inputs, chunksize), in_flight, end, ordered, run_chunk, retry=retry)


def _check_map_timeout(timeout: object) -> float | None:
    """As in ``concurrent.futures``: any number of seconds, 0 or less meaning
    "only what is already done"."""
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise ValueError(f"timeout must be a number of seconds or None, not {timeout!r}")
    return float(timeout)


def _adaptive_map(
    ex: BaseExecutor,
    fn: Callable[..., T],
    iterables: tuple[Iterable[Any], ...],
    end: float | None,
    ordered: bool,
    buffersize: int | None,
    cap: int,
    retry: RetryPolicy | None = None,
) -> _MapRun:
    """``map(chunksize=None)`` on a kind whose ``_default_chunksize`` batches:
    batch sizes from :class:`_Adaptive`, at most ``cap`` (the kind's choice)."""
    if buffersize is None:
        buffersize = 4 * ex.size * cap
    cap = min(cap, buffersize)
    flat = len(iterables) == 1
    inputs: Iterator[Any] = iter(iterables[0]) if flat else zip(*iterables, strict=False)
    sizer = _Adaptive(cap, ex.size, buffersize)
    # up to 4 batches per worker, and never more than ``buffersize`` inputs in flight
    return _MapRun(ex, fn, inputs, max(1, 4 * ex.size), end, ordered, run_items if flat else run_chunk, sizer, retry)


class _Adaptive:
    """Batch sizes for ``map(chunksize=None)``: one item per batch first, so the
    first result arrives after about one task's time; then, from the measured
    rate at which items finish, batches of about :data:`TARGET_BATCH_SECONDS`
    per worker, at most ``cap`` items (a progress bar moves at least that often).
    Until a batch has finished, sizes double."""

    __slots__ = ("cap", "done", "in_flight", "limit", "size", "workers")

    _WINDOW = 16  # finished batches the rate is measured over

    def __init__(self, cap: int, workers: int, limit: int | None = None) -> None:
        self.cap = cap
        self.limit = limit  # inputs in flight at most (``buffersize``)
        self.in_flight = 0  # inputs sent whose batch the map has not yielded yet
        self.workers = max(1, workers)
        self.size = 1
        # (finish time, items) of recent batches; appended by done-callbacks in
        # the executor's threads, read by the map's caller (deque ops are atomic)
        self.done: deque[tuple[int, float]] = deque(maxlen=self._WINDOW)

    def finished(self, items: int, queued: int) -> Callable[[Future[Any]], None]:
        """The done-callback of a batch of ``items`` dispatched now, with
        ``queued`` batches of this map in flight (itself included)."""
        done = self.done
        sent = time.perf_counter()
        # a batch behind others waits its turn: its time over its share of the workers
        share = max(1.0, queued / self.workers)

        def record(fut: Future[Any]) -> None:
            done.append((items, (time.perf_counter() - sent) / share))

        return record

    def next_size(self) -> int:
        done = list(self.done)
        if not done:
            return self.size  # nothing measured yet: stay small until a batch finishes
        # The time per item, from the batch that took least per item of the recent
        # ones: a batch's time also holds the round trip, so the least is the
        # closest to the work itself; while the round trip dominates, sizes grow
        # about tenfold a batch. And, as joblib does, a batch that took less than
        # the target makes the next up to 8 times as big, at least twice (a round
        # trip slower than the target per item would otherwise hold the sizes).
        per_item = min(took / items for items, took in done)
        want = 2 * self.size if per_item <= 0 else round(TARGET_BATCH_SECONDS / per_item)
        items, took = done[-1]
        if took < TARGET_BATCH_SECONDS:
            want = max(want, items * min(8, max(2, int(TARGET_BATCH_SECONDS / max(took, 1e-9)))))
        # shrink at most by half per batch (a slow spell), never past the cap
        self.size = max(1, self.size // 2, min(self.cap, want))
        return self.size


def run_chunk(fn: Callable[..., T], chunk: list[tuple[Any, ...]]) -> tuple[list[T], BaseException | None]:
    """Run ``fn`` over a chunk of argument tuples; stop at the first error and
    return the results before it with that error, so ``map`` raises it at its
    position."""
    results: list[T] = []
    append = results.append
    try:
        for args in chunk:
            append(fn(*args))
    except Exception as exc:
        return results, exc
    return results, None


def run_items(fn: Callable[[Any], T], items: list[Any]) -> tuple[list[T], BaseException | None]:
    """:func:`run_chunk` for ``map`` over one iterable: the chunk holds the
    items themselves, not 1-tuples (cheaper to build, send and run)."""
    results: list[T] = []
    append = results.append
    try:
        for item in items:
            append(fn(item))
    except Exception as exc:
        return results, exc
    return results, None


def _batched(it: Iterator[Any], n: int) -> Iterator[list[Any]]:
    while True:
        chunk = list(itertools.islice(it, n))
        if not chunk:
            return
        yield chunk


class _MapRun:
    """One ``map`` call: keeps ``in_flight`` tasks submitted and yields results."""

    def __init__(
        self,
        ex: BaseExecutor,
        fn: Callable[..., Any],
        inputs: Iterator[Any],
        in_flight: int,
        end: float | None,
        ordered: bool,
        runner: Any,
        sizer: _Adaptive | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.ex = ex
        self.fn = fn
        self.inputs = inputs
        self.in_flight = in_flight
        self.end = end
        self.runner = runner  # None: one task per input; else run_chunk / run_items over a batch
        self.retry = retry
        self.done_queue = None if ordered else _DoneQueue(ex)
        self.pending: deque[Future[Any]] = deque()
        self.exhausted = False
        self.position = 0  # of the next input in the whole map
        # with adaptive batches (``sizer``), ``inputs`` yields single inputs, batched here
        self.sizer = sizer
        self.per_call: dict[str, Any] = {}  # the backend's, for this call's batches (``_dispatch_batch``)
        # start work at call time, like concurrent.futures; adaptive: one 1-item batch per worker
        self._fill(in_flight if sizer is None else min(in_flight, max(1, ex.size)))

    def _fill(self, target: int) -> None:
        pending = self.pending
        ex = self.ex
        while len(pending) < target and not self.exhausted:
            sizer = self.sizer
            if sizer is None:
                try:
                    item = next(self.inputs)
                except StopIteration:
                    self.exhausted = True
                    return
            else:
                n = sizer.next_size()
                if sizer.limit is not None:
                    room = sizer.limit - sizer.in_flight
                    if room <= 0:
                        return
                    n = min(n, room)
                item = list(itertools.islice(self.inputs, n))
                if not item:
                    self.exhausted = True
                    return
                sizer.in_flight += len(item)
            if self.retry is not None:
                pending.append(self._dispatch_retrying(item))
                continue
            fut: Future[Any] = Future(ex)
            if sizer is not None:
                fut._callbacks = [sizer.finished(len(item), len(pending) + 1)]
                if self.done_queue is not None:
                    fut._callbacks.append(self.done_queue)
            elif self.done_queue is not None:
                fut._callbacks = [self.done_queue]
            ident = ex._begin_dispatch()
            try:
                if self.runner is None:
                    try:
                        if ex._copy_context:
                            ex._dispatch(fut, copy_context().run, (self.fn, *item), {}, None)
                        else:
                            ex._dispatch_item(fut, self.fn, item, self.per_call)
                    except SerializationError as exc:
                        # an input that cannot travel fails at its position, like a task error
                        err = SerializationError(f"map input item {self.position}: {exc}")
                        err.__cause__ = exc.__cause__
                        fut.try_set_exception(err)
                else:
                    ex._dispatch_batch(fut, self.fn, item, self.runner is run_items, self.position, self.per_call)
            finally:
                ex._end_dispatch(ident)
            self.position += len(item) if self.runner is not None else 1
            pending.append(fut)

    def _dispatch_retrying(self, item: Any) -> Future[Any]:
        """Dispatch one input (or batch) whose task is retried (see ``_retry``)."""
        from ._retry import RetryFuture, start_batch, start_task

        ex = self.ex
        assert self.retry is not None
        fut: RetryFuture[Any] = RetryFuture(ex)
        fut._callbacks = [] if self.sizer is None else [self.sizer.finished(len(item), len(self.pending) + 1)]
        if self.done_queue is not None:
            fut._callbacks.append(self.done_queue)
        ident = ex._begin_dispatch()
        try:
            if self.runner is None:
                fn, args = (copy_context().run, (self.fn, *item)) if ex._copy_context else (self.fn, item)
                try:
                    start_task(ex, fut, Future(ex), self.retry, fn, args, {}, None)
                except SerializationError as exc:
                    # an input that cannot travel fails at its position, like a task error
                    err = SerializationError(f"map input item {self.position}: {exc}")
                    err.__cause__ = exc.__cause__
                    fut.try_set_exception(err)
            else:
                start_batch(ex, fut, self.retry, self.fn, item, self.runner is run_items, self.position)
        finally:
            ex._end_dispatch(ident)
        self.position += len(item) if self.runner is not None else 1
        return fut

    def _remaining(self) -> float | None:
        if self.end is None:
            return None
        return max(0.0, self.end - _wait.now())

    def run(self) -> Iterator[Any]:
        if self.runner is None:
            return self._results()
        # batches: chain the result lists in C, so no Python frame runs per result
        batches = self._results()
        results: _ChainedResults = _ChainedResults.from_iterable(batches)  # type: ignore[assignment]
        results._batches = batches
        return results

    def _results(self) -> Iterator[Any]:
        """Each task's result in order (or completion order); for batches, each
        batch's result list, then its error if it stopped at one."""
        pending = self.pending
        queue = self.done_queue
        chunked = self.runner is not None
        try:
            while pending:
                # a one-item list, emptied by the yield: the generator keeps no
                # reference to a result the caller has dropped
                if queue is None:
                    try:
                        out = [pending[0].result(self._remaining())]
                    except TimeoutError:
                        if pending[0].done():
                            raise
                        raise TimeoutError("map() did not finish within its timeout") from None
                    pending.popleft()
                else:
                    fut = queue.get(self._remaining())
                    if fut is None:
                        raise TimeoutError("map() did not finish within its timeout")
                    pending.remove(fut)
                    out = [fut.result()]
                    del fut
                if chunked:
                    results, exc = out[0]
                    if self.sizer is not None:
                        self.sizer.in_flight -= len(results) if exc is None else self.sizer.in_flight
                self._fill(self.in_flight)
                if chunked:
                    results, exc = out.pop()
                    yield results
                    del results
                    if exc is not None:
                        raise exc
                else:
                    yield out.pop()
        finally:
            for fut in pending:
                fut.cancel()


class _ChainedResults(itertools.chain):  # type: ignore[type-arg]
    """The results of a batched ``map``: ``itertools.chain`` over the batches'
    result lists, with ``close()`` like a generator's (cancels what has not run)."""

    __slots__ = ("_batches",)
    _batches: Any

    def close(self) -> None:
        self._batches.close()
