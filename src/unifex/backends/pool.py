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
        self._cond = threading.Condition(threading.Lock())
        self._tasks: deque[Any] = deque()
        self._workers: dict[threading.Thread, list[Future[Any] | None]] = {}
        self._idle = 0  # workers waiting on the condition
        self._created = 0
        self._stopping = False

    @property
    def workers(self) -> int:
        """How many worker threads exist now."""
        with self._cond:
            return len(self._workers)

    @property
    def idle_workers(self) -> int:
        with self._cond:
            return self._idle

    def _dispatch(self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None) -> None:
        with self._cond:
            self._tasks.append((fut, fn, args, kwargs, timeout))
            if len(self._tasks) > self._idle and len(self._workers) < self.size:
                self._start_worker()
            else:
                self._cond.notify()

    def _start_worker(self) -> None:
        slot: list[Future[Any] | None] = [None]
        self._created += 1
        thread = threading.Thread(target=self._work, args=(slot,), name=f"unifex-pool-{self._created}", daemon=True)
        self._workers[thread] = slot
        thread.start()

    def _work(self, slot: list[Future[Any] | None]) -> None:
        """A worker: take tasks FIFO, shrink after ``idle_timeout``; with a task
        limit, hand its place to a new worker once it is spent."""
        cond = self._cond
        tasks = self._tasks
        me = threading.current_thread()
        life = WorkerLife(self._setup, self.kind)
        life.begin()  # worker_state() of this thread, and the initializer
        plain = self._setup.plain
        cond.acquire()
        try:
            while True:
                if not tasks:
                    self._idle += 1
                    try:
                        woken = cond.wait(self.idle_timeout)
                    finally:
                        self._idle -= 1
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
                        run_task(item, self._timer if item[4] is not None else None)
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
                del self._workers[me]
                if life.spent and tasks and len(self._workers) < self.size:
                    self._start_worker()  # replaced: queued tasks (or a stop sentinel) wait for it
                cond.notify_all()  # close(wait=True) waits for the last worker on this condition
                cond.release()

    def _shutdown(self, wait: bool) -> None:
        with self._cond:
            if not self._stopping:
                self._stopping = True
                self._tasks.extend([_STOP] * len(self._workers))
                self._cond.notify_all()
            if wait:
                me = threading.current_thread()
                while self._workers and not (len(self._workers) == 1 and me in self._workers):
                    self._cond.wait()
        if wait:
            self._stop_timer()

    def _terminate(self) -> None:
        with self._cond:
            dropped = [item[0] for item in self._tasks if item is not _STOP]
            self._tasks.clear()
            running = [slot[0] for slot in self._workers.values()]
            self._stopping = True
            self._tasks.extend([_STOP] * len(self._workers))
            self._cond.notify_all()
        fail_unfinished(dropped)
        fail_unfinished([f for f in running if f is not None])
        self._stop_timer()
