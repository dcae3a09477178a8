"""The ``greenlet`` kind's executor: accepts tasks into the thread's scheduler
(:mod:`.loop`), holds their slots, and closes and terminates them."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, final

from ... import _wait
from ..._base import BaseExecutor, stopped_error, terminated_error
from ..._errors import DeadlockError
from ..._future import Future
from .helpers import (
    GreenletBoundedSemaphore,
    GreenletCondition,
    GreenletEvent,
    GreenletLock,
    GreenletQueue,
    GreenletRLock,
    GreenletSemaphore,
)
from .loop import _CLOCKS, _current_task, _get_ident, _Loop, _Task

__all__ = ["GreenletExecutor"]


def _check_seed(seed: object) -> int | None:
    if seed is None or (isinstance(seed, int) and not isinstance(seed, bool)):
        return seed
    raise ValueError(f"seed must be an int or None, not {seed!r}")


def _check_clock(clock: object) -> str:
    if clock not in _CLOCKS:
        raise ValueError(f"clock must be 'real' or 'virtual', not {clock!r}")
    return clock  # type: ignore[return-value]


@final
class GreenletExecutor(BaseExecutor):
    """Tasks as plain greenlets on a deterministic scheduler in the calling thread."""

    kind: ClassVar[str] = "greenlet"
    options: ClassVar[frozenset[str]] = frozenset({"seed", "clock"})
    capabilities: ClassVar[frozenset[str]] = frozenset({"concurrent", "cooperative", "kill_running", "deterministic"})

    def __init__(self, size: int | None = None, *, seed: int | None = None, clock: str = "real") -> None:
        super().__init__(size)
        seed = _check_seed(seed)
        clock = _check_clock(clock)
        self._loop = _Loop.for_this_thread(seed, clock)
        self._active: dict[_Task, None] = {}  # slot holders, in start order
        self._pending: deque[_Task] = deque()  # waiting for a slot
        self._posted = 0  # submits from other threads not yet accepted by the loop
        self._idle_waiters: list[_wait.Waiter] = []
        self._terminated = False
        self._numbers = itertools.count(1)  # tasks are named #1, #2, ... in messages
        self._loop.executors[self] = None

    @classmethod
    def default_size(cls) -> int:
        return 100

    @property
    def seed(self) -> int | None:
        return self._loop.seed

    @property
    def clock(self) -> str:
        return self._loop.clock

    def now(self) -> float:
        """The scheduler's clock (virtual seconds with ``clock="virtual"``)."""
        return self._loop.now()

    # -- tasks -----------------------------------------------------------------------

    def _dispatch(
        self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
    ) -> None:
        task = _Task(self, fut, fn, args, kwargs, timeout)
        loop = self._loop
        if _get_ident() == loop.ident:
            self._accept(task)
        else:
            self._posted += 1
            loop.post(self._accept_posted, task)

    def _accept_posted(self, task: _Task) -> None:
        with self._state_lock:  # other threads count up under it
            self._posted -= 1
        self._accept(task)
        if not self._active and not self._pending and not self._posted:
            self._became_idle()

    def _accept(self, task: _Task) -> None:
        if self._terminated:
            task.fut.cancel()
        elif len(self._active) < self.size:
            self._active[task] = None
            loop = self._loop
            loop.ready.append(task)
            if loop.blockers:  # submitted by a gevent greenlet while the loop blocks in gevent
                loop.signal()
        else:
            self._pending.append(task)

    def _finish(self, task: _Task) -> None:
        """A task ended (or was skipped): free its slot and fill it."""
        task.finished = True
        task.g = None
        if task.timer is not None:
            self._loop.cancel(task.timer)
            task.timer = None
        active = self._active
        if task in active:
            del active[task]
            pending = self._pending
            while pending and len(active) < self.size:
                nxt = pending.popleft()
                if nxt.fut.done():  # cancelled while queued
                    continue
                active[nxt] = None
                self._loop.ready.append(nxt)
        if not active and not self._pending and not self._posted:
            self._became_idle()

    def _became_idle(self) -> None:
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            waiter.notify()
        if self._state:  # closed: nothing more can come
            self._unregister()

    def _idle(self) -> bool:
        return not self._active and not self._pending and not self._posted

    def _unregister(self) -> None:
        loop = self._loop
        if loop.executors.pop(self, 0) is None and not loop.executors:
            loop.retire()

    # -- close and terminate -----------------------------------------------------------

    def _wait_idle(self) -> None:
        while not self._idle():
            waiter = _wait.current().waiter(self)
            self._idle_waiters.append(waiter)
            waiter.wait(None)

    def _shutdown(self, wait: bool) -> None:
        loop = self._loop
        if _get_ident() != loop.ident:
            # only the owner thread can run the tasks; it unregisters when they are done
            if wait:
                self._wait_idle()
            return
        task = _current_task()
        if task is not None and task.ex is self:
            return  # a task closing its own executor cannot wait for itself
        try:
            self._wait_idle()
        except DeadlockError as exc:
            reason = str(exc)
            self._stop_all(lambda task: DeadlockError(f"task {task.describe()} was stopped by close(): it could never finish. {reason}"))
            raise
        self._unregister()

    def _cancel_queued(self) -> None:
        for task in list(self._pending):
            task.fut.cancel()

    def _stop_running(self, fut: Future[Any]) -> None:
        """asyncio cancelled the awaiter of a running task: kill it (in the loop's thread)."""

        def stop(_: object) -> None:
            for task in list(self._active):
                if task.fut is fut and not fut.done():
                    self._loop.kill(task, stopped_error())

        if _get_ident() == self._loop.ident:
            stop(None)
        else:
            self._loop.post(stop, None)

    def _terminate(self) -> None:
        loop = self._loop
        self._terminated = True
        if _get_ident() != loop.ident:
            # greenlets switch only in their own thread: fail the futures now, kill there later
            for task in [*self._pending, *self._active]:
                if not task.fut.cancel():
                    task.fut.try_set_exception(terminated_error())
            loop.post(self._terminate_here, None)
            return
        self._terminate_here(None)

    def _terminate_here(self, _: object) -> None:
        self._stop_all(lambda task: terminated_error())

    def _stop_all(self, error: Callable[[_Task], BaseException]) -> None:
        loop = self._loop
        pending = list(self._pending)
        self._pending.clear()
        for task in pending:
            task.fut.cancel()
        for task in list(self._active):
            if task.g is None:  # holds a slot but never started: cancel it like a queued one
                del self._active[task]
                task.fut.cancel()
        kept = [t for t in loop.ready if t.ex is not self]
        loop.ready.clear()
        loop.ready.extend(kept)
        for task in list(self._active):
            loop.kill(task, error(task))  # it leaves _active as it ends (a task stopping itself ends later)
        if self._idle():
            self._became_idle()

    # -- helpers (section 4 of the contract) -------------------------------------------

    def Lock(self) -> Any:
        return GreenletLock(self)

    def RLock(self) -> Any:
        return GreenletRLock(self)

    def Event(self) -> Any:
        return GreenletEvent(self)

    def Semaphore(self, n: int = 1) -> Any:
        return GreenletSemaphore(self, n)

    def BoundedSemaphore(self, n: int = 1) -> Any:
        return GreenletBoundedSemaphore(self, n)

    def Condition(self, lock: Any = None) -> Any:
        return GreenletCondition(self, lock)

    def Queue(self, maxsize: int = 0) -> Any:
        return GreenletQueue(self, maxsize)
