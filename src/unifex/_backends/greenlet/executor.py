"""The ``greenlet`` kind's executor: accepts tasks into the thread's scheduler
(:mod:`.loop`), holds their slots, and closes and terminates them."""

from __future__ import annotations

import itertools
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, final

from greenlet import getcurrent

from ... import _wait
from ..._base import COMMON_OPTIONS, BaseExecutor, stopped_error, terminated_error
from ..._errors import DeadlockError
from ..._future import Future
from ..._protocols import RLockLike
from ..._worker import WORKER_OPTIONS, WorkerLife, WorkerSetup, bind_state, register_state_lookup, unbind_state
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
    options: ClassVar[frozenset[str]] = frozenset({"seed", "clock"}) | COMMON_OPTIONS | WORKER_OPTIONS
    capabilities: ClassVar[frozenset[str]] = frozenset({"concurrent", "cooperative", "kill_running", "deterministic"})

    def __init__(
        self,
        size: int | None = None,
        *,
        seed: int | None = None,
        clock: str = "real",
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        finalizer: Callable[[], object] | None = None,
        max_tasks_per_worker: int | None = None,
        **common: Any,
    ) -> None:
        # A worker is a worker greenlet of the scheduler as this executor uses it:
        # its worker_state() and initializer are made at the first task of this
        # executor it runs; with a task limit it starts afresh once spent.
        self._setup = WorkerSetup(initializer, initargs, finalizer, max_tasks_per_worker)
        self._lives: dict[Any, WorkerLife] = {}  # worker greenlet -> its life for this executor
        super().__init__(size, **common)
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
        # dropped without close(): the loop retires (its idle worker greenlets end) if it was the last
        weakref.finalize(self, self._loop.retire_if_unused).atexit = False

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
        if not self._setup.plain:
            fn = _InWorker(self, fn, fut)
        task = _Task(self, fut, fn, args, kwargs, timeout)
        loop = self._loop
        if _get_ident() == loop.ident:
            self._accept(task)
        else:
            with self._state_lock:  # submits from several threads at once count up here
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
        if self._lives:
            self._end_lives()
        loop = self._loop
        if loop.executors.pop(self, 0) is None and not loop.executors:
            loop.retire()

    # -- workers (docs/lifecycle.md) ---------------------------------------------------

    def _life(self, g: Any) -> WorkerLife:
        """The life of worker greenlet ``g`` for this executor, begun (initializer
        run) at its first task, and begun afresh once spent."""
        life = self._lives.get(g)
        if life is not None and life.spent:
            self._end_life(g, life)
            life = None
        if life is None:
            life = self._lives[g] = WorkerLife(self._setup, self.kind)
            life.begin(g)
            unbind_state(life.previous, g)  # bound only while one of our tasks runs
        return life

    def _end_life(self, g: Any, life: WorkerLife) -> None:
        del self._lives[g]
        life.previous = bind_state(life.state, g)
        life.greenlet = g
        life.end()

    def _end_lives(self) -> None:
        """At close: every worker's finalizer, in the closing greenlet with that
        worker's state."""
        me = getcurrent()
        lives = list(self._lives.values())
        self._lives.clear()
        for life in lives:
            life.previous = bind_state(life.state, me)
            life.greenlet = me
            life.end()

    def _call_later(self, delay: float, fn: Callable[[Any], object]) -> None:
        # a retry's backoff on the scheduler's clock: the virtual clock skips it
        loop = self._loop
        if _get_ident() == loop.ident:
            loop.call_at(loop.now() + delay, fn, None)
        else:
            loop.post(lambda _: loop.call_at(loop.now() + delay, fn, None), None)

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

    def Lock(self) -> GreenletLock:
        return GreenletLock(self)

    def RLock(self) -> GreenletRLock:
        return GreenletRLock(self)

    def Event(self) -> GreenletEvent:
        return GreenletEvent(self)

    def Semaphore(self, value: int = 1) -> GreenletSemaphore:
        return GreenletSemaphore(self, value)

    def BoundedSemaphore(self, value: int = 1) -> GreenletBoundedSemaphore:
        return GreenletBoundedSemaphore(self, value)

    def Condition(self, lock: RLockLike | None = None) -> GreenletCondition:
        return GreenletCondition(self, lock)

    def Queue(self, maxsize: int = 0) -> GreenletQueue:
        return GreenletQueue(self, maxsize)


class _InWorker:
    """A task's function with worker options set: counts the task on its worker,
    fails it with the initializer's error, binds the worker's state while it runs."""

    __slots__ = ("__qualname__", "ex", "fn", "fut")

    def __init__(self, ex: GreenletExecutor, fn: Callable[..., Any], fut: Future[Any]) -> None:
        self.ex = ex
        self.fn = fn
        self.fut = fut
        self.__qualname__ = getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        g = getcurrent()
        life = self.ex._life(g)
        life.done += 1
        if life.init_error is not None:
            raise life.init_error
        previous = bind_state(life.state, g)
        try:
            return self.fn(*args, **kwargs)
        finally:
            unbind_state(previous, g)


def _plain_state() -> dict[str, Any] | None:
    """worker_state() in a task of an executor without worker options: one dict
    per worker greenlet and executor, made on first use."""
    task = _current_task()
    if task is None:
        return None
    ex = task.ex
    g = getcurrent()
    life = ex._lives.get(g)
    if life is None:
        life = ex._lives[g] = WorkerLife(ex._setup, ex.kind)
    return life.state


register_state_lookup(_plain_state)
