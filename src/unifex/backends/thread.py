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

from .._base import BaseExecutor, fail_unfinished, run_task
from .._future import Future

__all__ = ["ThreadExecutor"]

_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any], "float | None"]


@final
class ThreadExecutor(BaseExecutor):
    """Tasks on a pool of OS threads."""

    kind: ClassVar[str] = "thread"
    options: ClassVar[frozenset[str]] = frozenset({"thread_name_prefix"})
    capabilities: ClassVar[frozenset[str]] = frozenset({"concurrent", "threads"})

    def __init__(self, size: int | None = None, *, thread_name_prefix: str = "unifex-thread") -> None:
        super().__init__(size)
        self._prefix = thread_name_prefix
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
        thread = threading.Thread(
            target=_work, args=(self._queue, self._idle, slot, weakref.ref(self)), name=f"{self._prefix}-{len(self._threads)}", daemon=True
        )
        self._threads.append(thread)
        self._slots.append(slot)
        return thread

    def _shutdown(self, wait: bool) -> None:
        with self._state_lock:
            threads = list(self._threads)
            sentinels_due = not self._sentinels_sent
            self._sentinels_sent = True
        if sentinels_due:
            for _ in threads:
                self._queue.put(None)
        if wait:
            for thread in threads:
                if thread is not threading.current_thread():
                    thread.join()
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


def _work(queue: SimpleQueue[_Item | None], idle: _Idle, slot: list[Future[Any] | None], wex: weakref.ref[ThreadExecutor]) -> None:
    get = queue.get
    idle_lock = idle.lock
    while True:
        item = get()
        if item is None:
            return
        slot[0] = item[0]
        if item[4] is None:
            run_task(item, None)
        else:
            ex = wex()  # alive: the queued future refers to it
            run_task(item, ex._timer if ex is not None else None)
            del ex
        slot[0] = None
        del item
        with idle_lock:
            idle.count += 1


def _stop_threads(queue: SimpleQueue[_Item | None], threads: list[threading.Thread]) -> None:
    for _ in threads:
        queue.put(None)
