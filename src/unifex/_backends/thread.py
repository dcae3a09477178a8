"""The ``thread`` kind: OS threads fed from one ``SimpleQueue``, tuned to cost
no more per task than :class:`concurrent.futures.ThreadPoolExecutor`.

Threads start on demand up to ``size`` (an idle thread is reused before a new
one is made) and live until ``close()``. Threads cannot be interrupted: a
per-task ``timeout`` or ``terminate()`` fails the future at once and the thread
finishes the function in the background.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from queue import Empty, SimpleQueue
from typing import Any, ClassVar, final

from .._base import COMMON_OPTIONS, BaseExecutor, fail_unfinished, run_task
from .._future import Future
from .._worker import WORKER_OPTIONS, WorkerLife, WorkerSetup, bind_state, unbind_state

__all__ = ["ThreadExecutor"]

_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any], "float | None"]


@final
class ThreadExecutor(BaseExecutor):
    """Tasks on a pool of OS threads."""

    kind: ClassVar[str] = "thread"
    options: ClassVar[frozenset[str]] = frozenset({"thread_name_prefix"}) | COMMON_OPTIONS | WORKER_OPTIONS
    capabilities: ClassVar[frozenset[str]] = frozenset({"concurrent", "threads"})

    def __init__(
        self,
        size: int | None = None,
        *,
        thread_name_prefix: str = "unifex-thread",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        finalizer: Callable[[], object] | None = None,
        max_tasks_per_worker: int | None = None,
        **common: Any,
    ) -> None:
        self._setup = WorkerSetup(initializer, initargs, finalizer, max_tasks_per_worker)
        super().__init__(size, **common)
        self._prefix = thread_name_prefix
        self._retired: list[threading.Thread] = []  # replaced after max_tasks_per_worker: joined at close
        self._queue: SimpleQueue[_Item | None] = SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._slots: list[list[Future[Any] | None]] = []
        # idle tokens: one per thread waiting for work that no submit has claimed yet
        self._idle = _Idle()
        self._idle_lock = self._idle.lock
        self._sentinels_sent = False
        # the threads hold no reference to the executor: dropped without close(),
        # it is collected once its queued tasks are done, and its threads end
        weakref.finalize(self, _stop_threads, self._queue, self._threads).atexit = False

    def _dispatch(self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None) -> None:
        self._queue.put((fut, fn, args, kwargs, timeout))
        idle = self._idle
        with self._idle_lock:  # also keeps concurrent submits from making more than size threads
            if idle.count:
                idle.count -= 1
                return
            if len(self._threads) >= self.size:
                return
            thread = self._new_thread()
        thread.start()  # outside the lock, which the new thread takes once its first task is done

    def _new_thread(self) -> threading.Thread:
        slot: list[Future[Any] | None] = [None]
        thread = threading.Thread(target=_work, args=self._work_args(slot), name=f"{self._prefix}-{len(self._threads)}", daemon=True)
        self._threads.append(thread)
        self._slots.append(slot)
        return thread

    def _replace(self, slot: list[Future[Any] | None]) -> None:
        """A worker spent by ``max_tasks_per_worker`` hands its place to a new thread."""
        me = threading.current_thread()
        with self._state_lock:
            index = self._threads.index(me)
            thread = threading.Thread(target=_work, args=self._work_args(slot), name=f"{self._prefix}-{index}", daemon=True)
            self._threads[index] = thread
            self._retired.append(me)
            thread.start()

    def _work_args(self, slot: list[Future[Any] | None]) -> tuple[Any, ...]:
        return (self._queue, self._idle, slot, weakref.ref(self), self._setup, self.kind)

    def _shutdown(self, wait: bool) -> None:
        with self._state_lock:
            threads = list(self._threads)
            sentinels_due = not self._sentinels_sent
            self._sentinels_sent = True
        if sentinels_due:
            for _ in threads:
                self._queue.put(None)
        if wait:
            joined: set[threading.Thread] = {threading.current_thread()}
            while True:  # workers replaced meanwhile (max_tasks_per_worker) too
                with self._state_lock:
                    threads = [t for t in (*self._threads, *self._retired) if t not in joined]
                if not threads:
                    break
                for thread in threads:
                    thread.join()
                    joined.add(thread)
            self._stop_timer()

    def _cancel_queued(self) -> None:
        while True:
            try:
                item = self._queue.get_nowait()
            except Empty:
                break
            if item is not None:
                item[0].cancel()

    def _terminate(self) -> None:
        cancelled: list[Future[Any]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except Empty:
                break
            if item is not None:
                cancelled.append(item[0])
        fail_unfinished(cancelled)
        fail_unfinished([slot[0] for slot in self._slots if slot[0] is not None])
        for _ in self._threads:
            self._queue.put(None)
        self._stop_timer()


class _Idle:
    """The idle count the threads share with the executor."""

    __slots__ = ("count", "lock")

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()


def _work(
    queue: SimpleQueue[_Item | None],
    idle: _Idle,
    slot: list[Future[Any] | None],
    wex: weakref.ref[ThreadExecutor],
    setup: WorkerSetup,
    kind: str,
) -> None:
    """A worker thread. It holds no reference to its executor between tasks, so
    an executor dropped without ``close()`` is collected and its threads end."""
    if not setup.plain:
        _work_managed(queue, idle, slot, wex, setup, kind)
        return
    get = queue.get
    idle_lock = idle.lock
    previous = bind_state({})  # unifex.worker_state() of this thread
    try:
        while True:
            item = get()
            if item is None:
                return
            slot[0] = item[0]
            if item[4] is None:  # no timeout: the common case, one call less
                run_task(item, None)
            else:
                _run(item, wex)
            slot[0] = None
            del item
            with idle_lock:
                idle.count += 1
    finally:
        unbind_state(previous)


def _work_managed(
    queue: SimpleQueue[_Item | None],
    idle: _Idle,
    slot: list[Future[Any] | None],
    wex: weakref.ref[ThreadExecutor],
    setup: WorkerSetup,
    kind: str,
) -> None:
    """``_work`` with an initializer, a finalizer or a task limit: a thread
    that has run ``max_tasks_per_worker`` tasks hands its place to a new one."""
    get = queue.get
    idle_lock = idle.lock
    life: WorkerLife | None = WorkerLife(setup, kind)
    assert life is not None
    life.begin()
    try:
        while True:
            item = get()
            if item is None:
                return
            slot[0] = item[0]
            if life.take(item[0]):
                _run(item, wex)
            slot[0] = None
            del item
            if life.spent:
                life.end()
                life = None
                ex = wex()
                if ex is not None:
                    ex._replace(slot)
                del ex
            with idle_lock:
                idle.count += 1
            if life is None:
                return
    finally:
        if life is not None:
            life.end()


def _run(item: _Item, wex: weakref.ref[ThreadExecutor]) -> None:
    if item[4] is None:
        run_task(item, None)
    else:
        ex = wex()  # alive: the queued future refers to it
        run_task(item, ex._timer if ex is not None else None)
        del ex


def _stop_threads(queue: SimpleQueue[_Item | None], threads: list[threading.Thread]) -> None:
    for _ in threads:
        queue.put(None)
