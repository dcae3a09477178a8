"""The ``pool`` kind: the elastic thread pool of the reference tutorial's
"custom thread pool", done right.

One task deque and one condition guard all the bookkeeping, so a submit and a
worker can never disagree about who is idle:

* ``submit`` appends the task; if more tasks wait than workers idle and fewer
  than ``size`` workers exist, it starts a worker, else it wakes an idle one;
* a worker takes tasks FIFO; when none is left it waits, and after
  ``idle_timeout`` seconds of waiting with nothing to do it exits;
* ``close`` appends one stop sentinel per worker behind the queued tasks;
* ``terminate`` drops the queue, then stops each worker with its sentinel.

No :mod:`concurrent.futures` executor inside.
"""

from __future__ import annotations

import threading
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, final

from .._base import COMMON_OPTIONS, BaseExecutor, fail_unfinished, run_task
from .._future import Future
from .._worker import WORKER_OPTIONS, WorkerLife, WorkerSetup

__all__ = ["ElasticPoolExecutor"]

_STOP = None  # the stop sentinel


@final
class ElasticPoolExecutor(BaseExecutor):
    """An elastic thread pool: grows on demand, reuses idle workers, shrinks."""

    kind: ClassVar[str] = "pool"
    options: ClassVar[frozenset[str]] = frozenset({"idle_timeout"}) | COMMON_OPTIONS | WORKER_OPTIONS
    capabilities: ClassVar[frozenset[str]] = frozenset({"concurrent", "threads"})

    def __init__(
        self,
        size: int | None = None,
        *,
        idle_timeout: float | None = 60.0,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        finalizer: Callable[[], object] | None = None,
        max_tasks_per_worker: int | None = None,
        **common: Any,
    ) -> None:
        if idle_timeout is not None and (isinstance(idle_timeout, bool) or not isinstance(idle_timeout, (int, float)) or idle_timeout <= 0):
            raise ValueError(f"idle_timeout must be a positive number of seconds or None (never shrink), not {idle_timeout!r}")
        self._setup = WorkerSetup(initializer, initargs, finalizer, max_tasks_per_worker)
        super().__init__(size, **common)
        self.idle_timeout = idle_timeout
        # what the workers share; they hold no reference to the executor, so one
        # dropped without close() is collected and its workers stop
        self._s = s = _PoolState(idle_timeout)
        self._cond = s.cond
        self._tasks = s.tasks
        self._workers = s.workers
        self._created = 0
        weakref.finalize(self, _stop_workers, s).atexit = False

    @property
    def workers(self) -> int:
        """How many worker threads exist now."""
        with self._cond:
            return len(self._workers)

    @property
    def idle_workers(self) -> int:
        with self._cond:
            return self._s.idle

    def _dispatch(self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None) -> None:
        with self._cond:
            self._tasks.append((fut, fn, args, kwargs, timeout))
            if len(self._tasks) > self._s.idle and len(self._workers) < self.size:
                self._start_worker()
            else:
                self._cond.notify()

    def _start_worker(self) -> None:
        slot: list[Future[Any] | None] = [None]
        self._created += 1
        thread = threading.Thread(
            target=_work, args=(self._s, slot, weakref.ref(self), self._setup, self.kind), name=f"unifex-pool-{self._created}", daemon=True
        )
        self._workers[thread] = slot
        thread.start()

    def _shutdown(self, wait: bool) -> None:
        with self._cond:
            if not self._s.stopping:
                self._s.stopping = True
                self._tasks.extend([_STOP] * len(self._workers))
                self._cond.notify_all()
            if wait:
                me = threading.current_thread()
                while self._workers and not (len(self._workers) == 1 and me in self._workers):
                    self._cond.wait()
        if wait:
            self._stop_timer()

    def _cancel_queued(self) -> None:
        with self._cond:
            queued = [item[0] for item in self._tasks if item is not _STOP]
        for fut in queued:
            fut.cancel()

    def _terminate(self) -> None:
        with self._cond:
            dropped = [item[0] for item in self._tasks if item is not _STOP]
            self._tasks.clear()
            running = [slot[0] for slot in self._workers.values()]
            self._s.stopping = True
            self._tasks.extend([_STOP] * len(self._workers))
            self._cond.notify_all()
        fail_unfinished(dropped)
        fail_unfinished([f for f in running if f is not None])
        self._stop_timer()


class _PoolState:
    """The task deque, the condition and the worker table, shared by the
    executor and its workers."""

    __slots__ = ("cond", "idle", "idle_timeout", "stopping", "tasks", "workers")

    def __init__(self, idle_timeout: float | None) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.tasks: deque[Any] = deque()
        self.workers: dict[threading.Thread, list[Future[Any] | None]] = {}
        self.idle = 0  # workers waiting on the condition
        self.idle_timeout = idle_timeout
        self.stopping = False


def _work(s: _PoolState, slot: list[Future[Any] | None], wex: weakref.ref[ElasticPoolExecutor], setup: WorkerSetup, kind: str) -> None:
    """A worker: take tasks FIFO, shrink after ``idle_timeout``; with a task
    limit, hand its place to a new worker once it is spent. It holds no
    reference to its executor between tasks."""
    cond = s.cond
    tasks = s.tasks
    me = threading.current_thread()
    life = WorkerLife(setup, kind)
    life.begin()  # worker_state() of this thread, and the initializer
    plain = setup.plain
    cond.acquire()
    try:
        while True:
            if not tasks:
                s.idle += 1
                try:
                    woken = cond.wait(s.idle_timeout)
                finally:
                    s.idle -= 1
                if not woken and not tasks:
                    return  # idle too long: shrink
                continue
            item = tasks.popleft()
            if item is _STOP:
                return
            slot[0] = item[0]
            cond.release()
            try:
                if plain or life.take(item[0]):
                    if item[4] is None:
                        run_task(item, None)
                    else:
                        ex = wex()  # alive: the task's future refers to it
                        run_task(item, ex._timer if ex is not None else None)
                        del ex
            finally:
                del item
                slot[0] = None
                cond.acquire()
            if not plain and life.spent:
                return
    finally:
        cond.release()
        try:
            life.end()  # the finalizer runs outside the lock
        finally:
            cond.acquire()
            del s.workers[me]
            if life.spent and tasks:
                ex = wex()
                if ex is not None and len(s.workers) < ex.size:
                    ex._start_worker()  # replaced: queued tasks (or a stop sentinel) wait for it
                del ex
            cond.notify_all()  # close(wait=True) waits for the last worker on this condition
            cond.release()


def _stop_workers(s: _PoolState) -> None:
    with s.cond:
        s.stopping = True
        s.tasks.extend([_STOP] * len(s.workers))
        s.cond.notify_all()
