"""Done-callbacks on a thread of their own, for the kinds whose futures are
settled by one internal thread (the ``process`` dispatcher, the ``dask``
collector): a callback may block, even on another future of the same
executor, without stalling the executor.

    dispatcher thread                              callback thread (started on first use)
    =================                              ======================================
    held = hold(fut)    (add_done_callback still
                         appends; settling runs none)
    fut.try_set_result(...)  waiters wake at once
    runner.settled(fut, held) ───── deque ───────► run each callback (one that raises is
                                                     logged); ends when the dispatcher ends
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any

from ._future import CANCELLED, Future, run_callback

__all__ = ["CallbackRunner", "hold"]



class _Held(list):  # type: ignore[type-arg]
    """A future's callback list while the dispatcher settles it: appends work as
    usual, but settling runs nothing from it; the runner gets its contents."""

    __slots__ = ()

    def __iter__(self) -> Iterator[Any]:
        return iter(())


def hold(fut: Future[Any]) -> list[Any] | None:
    """Keep ``fut``'s callbacks (present and added until it settles) from running
    in the thread that settles it; None if it is already done."""
    with fut._lock:
        if fut._st >= CANCELLED:
            return None
        held = _Held()
        if fut._callbacks is not None:
            held += fut._callbacks[:]  # slicing: the contents even of a _Held
        fut._callbacks = held
    return held


class CallbackRunner:
    """One thread running the callbacks :func:`hold` kept back, in settling order."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[tuple[Future[Any], list[Callable[..., object]]]] = deque()
        self._thread: threading.Thread | None = None
        self._stopping = False

    def settled(self, fut: Future[Any], held: list[Any] | None) -> None:
        """``fut`` is done: run the callbacks held for it (if any) on the thread."""
        if held:
            self.post(fut, held[:])

    def post(self, fut: Future[Any], callbacks: list[Callable[..., object]]) -> None:
        """Run ``callbacks(fut)`` on the thread, in order after those posted
        before; once stopped, in the caller."""
        with self._cond:
            if not self._stopping:
                self._queue.append((fut, callbacks))
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, name=self._name, daemon=True)
                    self._thread.start()
                else:
                    self._cond.notify()
                return
        for callback in callbacks:  # after the executor is gone: run them here
            run_callback(callback, fut)

    def is_current(self) -> bool:
        return self._thread is threading.current_thread()

    def _run(self) -> None:
        cond = self._cond
        queue = self._queue
        while True:
            with cond:
                while not queue and not self._stopping:
                    cond.wait()
                if not queue:
                    return
                fut, callbacks = queue.popleft()
            for callback in callbacks:
                run_callback(callback, fut)
            del fut, callbacks

    def stop(self) -> None:
        """Run what is queued, then end the thread; wait for it unless called from it."""
        with self._cond:
            self._stopping = True
            thread = self._thread
            self._cond.notify()
        if thread is not None and thread is not threading.current_thread():
            thread.join()
