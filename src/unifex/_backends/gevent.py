"""The ``gevent`` kind: tasks run as greenlets of a :class:`gevent.pool.Pool` on
the gevent hub of the thread that created the executor.

How the pieces fit::

    submit / map / apply_async (any thread)
        |  append (fut, fn, args, kwargs, timeout)
        v
    _pending: deque  --------------------------------------+
        |  hub thread, while tasks outnumber the workers   |  other threads:
        |  about to take one: wake a parked worker, else   |  HubBridge.call(_start_workers):
        |  spawn one if the pool has a free slot           |  a deque + an async watcher
        v                                                  |
    gevent.pool.Pool(size) of worker greenlets  <----------+
        a worker pops tasks until the deque is empty, then parks in the hub
        (at most _KEEP_IDLE of them) or exits; so ``Pool.spawn`` never blocks,
        the pool never holds more than ``size`` greenlets, and a task submitted
        to an idle executor costs a switch, not a new greenlet

Design decisions:

* **Waiting.** The executor pushes a :class:`GeventWaitContext` on its thread
  (:func:`unifex._wait.push_context`). Every unifex wait there (futures, ``map``,
  ``wait``, ``as_completed``, ``unifex.sleep``), in the main greenlet as in the
  tasks, switches to the hub instead of blocking the thread. ``notify`` works
  from any OS thread: from the hub's own thread it schedules the wake-up with
  ``loop.run_callback``; from another thread through the hub's
  :class:`HubBridge` (``run_callback_threadsafe`` is not thread-safe: see
  there), whose ``async`` watcher also wakes the loop. While a waiter
  without a timeout is parked, it holds a reference on the loop
  (``loop.ref()``), so gevent does not raise ``LoopExit`` while the wake-up can
  still come from another thread. The price: a wait that can never end hangs,
  as it does on threads, instead of gevent's ``LoopExit``.
* **Other OS threads** may submit, wait on futures (they get the plain thread
  waiter), ``close`` and ``terminate``; the gevent objects themselves are only
  touched in the hub's thread, reached through the :class:`HubBridge`.
  Work from another thread makes progress only while the owning thread runs
  its hub, i.e. while it is inside a gevent or unifex wait.
* **Per-task timeout.** A libev timer fires in the hub at the deadline and throws
  a :class:`gevent.Timeout` into the task's greenlet, wherever it is waiting; the
  worker fails the future with :class:`~unifex.TaskTimeoutError` and goes on with
  the next task. A task that swallows the exception has its future failed by
  the hub anyway; the function then runs on, as on threads.
* **terminate()** cancels queued tasks, fails running ones with
  :class:`~unifex.TerminatedError` and kills the worker greenlets
  (``GreenletExit``) and waits for them to die; workers not yet started hold
  no task, so killing them before they run loses nothing. A task that catches
  ``GreenletExit`` and runs on keeps ``terminate`` waiting, as with
  ``Pool.kill``. From another thread the kill is scheduled on the hub and
  ``terminate`` does not wait for it.
* **close(wait=True)** sends the parked workers home and returns once the queue
  is empty and every worker greenlet is dead (checked from links that run after
  the pool dropped each greenlet). The wait context leaves the thread only
  then, so after ``close(wait=False)`` waits on the remaining futures still
  let them run.
* **Monkey patching.** Without ``gevent.monkey.patch_all()``, tasks only switch
  at gevent and unifex waits: ``time.sleep`` and socket I/O block the hub and
  every other task. With it, I/O yields. When unifex is imported after
  patching, ``threading.local`` is greenlet-local, so each worker greenlet
  pushes the wait context for itself.
* **Helpers** (:mod:`unifex._backends.gevent_helpers`) come from :mod:`gevent.lock`, :mod:`gevent.event` and
  :mod:`gevent.queue`, wrapped where their spelling differs from the stdlib
  (``timeout=-1``, ``release(n)``, the error a stdlib lock raises);
  ``Condition`` is built on them; ``dict`` is a plain ``dict`` (one hub thread:
  each operation is atomic).
"""

from __future__ import annotations

import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, final

import gevent
import gevent.event
import gevent.local
import gevent.lock
import gevent.pool
import gevent.queue
from gevent.monkey import get_original
from greenlet import getcurrent

from .. import _wait
from .._base import COMMON_OPTIONS, BaseExecutor, describe_call, fail_unfinished, stopped_error
from .._errors import TaskTimeoutError
from .._future import Future
from .._protocols import RLockLike
from .._worker import WORKER_OPTIONS, WorkerLife, WorkerSetup
from .gevent_helpers import BoundedSemaphore, Condition, Event, Lock, Queue, RLock, Semaphore

__all__ = ["BoundedSemaphore", "Condition", "Event", "GeventExecutor", "GeventWaitContext", "Lock", "Queue", "RLock", "Semaphore"]

T = TypeVar("T")

# The real OS thread id, even when unifex is imported after monkey patching
# (patched ``get_ident`` returns a greenlet id).
_get_ident: Callable[[], int] = get_original("_thread", "get_ident")

#: parked idle workers kept per executor: a task submitted to an idle executor
#: reuses one instead of paying for a new greenlet
_KEEP_IDLE = 8

_monotonic = time.monotonic

_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any], "float | None"]


# -- waiting ------------------------------------------------------------------------


class GeventWaiter:
    """A one-shot wake-up for a greenlet of one hub's thread; ``notify`` from any thread."""

    __slots__ = ("_ctx", "_glet", "_notified")

    def __init__(self, ctx: GeventWaitContext) -> None:
        self._ctx = ctx
        self._glet: Any = None  # the greenlet parked in wait(), until woken
        self._notified = False

    def notify(self) -> None:
        if self._notified:
            return
        # Set the flag before reading _glet: wait() sets _glet before reading the
        # flag, so one of the two always sees the other (the GIL orders them).
        self._notified = True
        if self._glet is not None:
            ctx = self._ctx
            if _get_ident() == ctx.thread_ident:
                ctx.loop.run_callback(self._wake, True)
            else:
                ctx.bridge.call(self._wake, True)

    def _wake(self, value: bool) -> None:
        # Runs in the hub. Several wake-ups may be scheduled (notify and the
        # timer); only the first still finds the greenlet parked.
        glet = self._glet
        if glet is not None:
            self._glet = None
            glet.switch(value)

    def wait(self, timeout: float | None) -> bool:
        if self._notified:
            return True
        self._glet = getcurrent()
        if self._notified:  # notified from another thread in between
            self._glet = None
            return True
        ctx = self._ctx
        hub = ctx.hub
        loop = ctx.loop
        if timeout is None:
            loop.ref()  # keep the loop alive: the notify may come from another thread
            try:
                while self._glet is not None:  # ignore stray switches
                    hub.switch()
            finally:
                self._glet = None
                loop.unref()
            return True
        timer = loop.timer(max(timeout, 0.0))
        timer.start(self._wake, False)
        try:
            while self._glet is not None:
                hub.switch()
        finally:
            self._glet = None
            timer.close()
        return self._notified


class HubBridge:
    """The one way other OS threads reach a hub: a deque of calls and a libev
    ``async`` watcher whose ``send()`` is thread-safe.

    ``loop.run_callback_threadsafe`` is not: it calls ``ev_ref`` on the loop from
    the foreign thread while the hub's thread runs libev without the GIL, and
    under load the loop's reference count is corrupted (``LoopExit: This
    operation would block forever``, hub ``ref=-1``). The watcher is made in the
    hub's thread, one per hub, and holds no reference on the loop (a parked
    waiter without a timeout holds one while it may be woken from elsewhere).
    """

    __slots__ = ("__weakref__", "_calls", "_watcher")

    def __init__(self, loop: Any) -> None:
        self._calls: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        watcher = loop.async_()
        watcher.ref = False
        watcher.start(self._drain)
        self._watcher = watcher

    def call(self, fn: Callable[..., object], *args: Any) -> None:
        """Run ``fn(*args)`` in the hub's thread soon; callable from any thread."""
        self._calls.append((fn, args))  # deque.append is atomic under the GIL
        self._watcher.send()

    def _drain(self) -> None:
        calls = self._calls
        while True:
            try:
                fn, args = calls.popleft()
            except IndexError:
                return
            fn(*args)


_bridges: weakref.WeakKeyDictionary[Any, HubBridge] = weakref.WeakKeyDictionary()  # hub -> its bridge


def _bridge_for(hub: Any) -> HubBridge:
    """The bridge of ``hub``; called in the hub's thread, which makes it."""
    bridge = _bridges.get(hub)
    if bridge is None:
        bridge = _bridges[hub] = HubBridge(hub.loop)
    return bridge


class GeventWaitContext:
    """Waiting in a thread that runs a gevent hub: yield to the hub."""

    __slots__ = ("bridge", "hub", "loop", "thread_ident")

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.loop = hub.loop
        self.thread_ident = _get_ident()
        self.bridge = _bridge_for(hub)

    def waiter(self, source: object) -> GeventWaiter:
        return GeventWaiter(self)

    def sleep(self, seconds: float) -> None:
        gevent.sleep(seconds)

    def __repr__(self) -> str:
        return f"<unifex gevent wait context thread={self.thread_ident:#x}>"


# -- the executor -------------------------------------------------------------------


@final
class GeventExecutor(BaseExecutor):
    """Tasks as greenlets of a ``gevent.pool.Pool(size)`` on this thread's hub."""

    kind: ClassVar[str] = "gevent"
    options: ClassVar[frozenset[str]] = COMMON_OPTIONS | WORKER_OPTIONS
    capabilities: ClassVar[frozenset[str]] = frozenset({"concurrent", "cooperative", "kill_running"})

    @classmethod
    def default_size(cls) -> int:
        return 100

    def __init__(
        self,
        size: int | None = None,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        finalizer: Callable[[], object] | None = None,
        max_tasks_per_worker: int | None = None,
        **common: Any,
    ) -> None:
        # A worker is one greenlet of the pool: it runs the initializer when it
        # starts and keeps its worker_state() until it leaves. With worker options
        # set, idle workers stay parked (up to ``size``) instead of exiting, so the
        # initializer runs once per worker, not once per burst of work.
        self._setup = WorkerSetup(initializer, initargs, finalizer, max_tasks_per_worker)
        super().__init__(size, **common)
        self._hub = gevent.get_hub()
        self._loop = self._hub.loop
        self._ident = _get_ident()
        self._pool = gevent.pool.Pool(self.size)
        self._workers = self._pool.greenlets  # the pool's live set, read for its length
        self._pending: deque[_Item] = deque()
        self._running: dict[Any, Future[Any]] = {}  # worker greenlet -> the future it runs
        self._unclaimed = 0  # workers woken or spawned that have not taken a task yet
        self._idle: list[Any] = []  # parked workers, waiting in the hub for work
        self._closing = False  # hub side of close: workers are linked to _on_worker_exit
        self._idle_waiters: list[_wait.Waiter] = []
        self._ctx = GeventWaitContext(self._hub)
        # Under monkey patching with unifex imported afterwards, thread-locals are
        # greenlet-locals: the context pushed here is not seen inside workers.
        self._per_greenlet_context = isinstance(_wait._local, gevent.local.local)
        self._ctx_owner: Any = getcurrent() if self._per_greenlet_context else None
        self._ctx_pushed = True
        self._retire_when_drained = False
        _wait.push_context(self._ctx)
        # dropped without close(): its parked workers go home, its wait context leaves the thread
        weakref.finalize(self, _dropped, self._idle, self._loop, self._ctx, self._ident).atexit = False

    # -- dispatch ----------------------------------------------------------------------

    def _dispatch(
        self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None
    ) -> None:
        pending = self._pending
        pending.append((fut, fn, args, kwargs, timeout))
        if _get_ident() != self._ident:
            self._ctx.bridge.call(self._start_workers)
        elif len(pending) > self._unclaimed:
            idle = self._idle
            if idle:
                self._unclaimed += 1
                self._loop.run_callback(idle.pop().switch, self)  # the worker's strong reference back
            elif len(self._workers) < self.size:
                self._spawn()

    def _start_workers(self) -> None:
        """Wake parked workers, then spawn new ones, while queued tasks outnumber
        workers about to take one and the pool has room. Hub thread only."""
        idle = self._idle
        while len(self._pending) > self._unclaimed:
            if idle:
                self._unclaimed += 1
                self._loop.run_callback(idle.pop().switch, self)  # the worker's strong reference back
            elif len(self._workers) < self.size:
                self._spawn()
            else:
                return

    def _spawn(self) -> None:
        # Only called with a free slot, so Pool.spawn never blocks.
        self._unclaimed += 1
        glet = self._pool.spawn(GeventExecutor._work, [self])
        if self._closing:
            glet.rawlink(self._on_worker_exit)

    @staticmethod
    def _work(box: list[GeventExecutor]) -> None:
        """A worker greenlet: run queued tasks; when none is left, park (up to
        ``_KEEP_IDLE`` workers) to save the next task a greenlet spawn, or exit.

        A parked worker holds no reference to its executor, so one dropped
        without ``close()`` is collected and its finalizer sends the parked
        workers home. The executor reaches a worker through a one-item ``box``
        (not a spawn argument, which the greenlet would keep) and through the
        value a parked worker is woken with; both keep an executor with queued
        tasks alive until a worker runs them."""
        self = box.pop()
        self._unclaimed -= 1
        if self._per_greenlet_context:
            _wait.push_context(self._ctx)
        pending = self._pending
        running = self._running
        idle = self._idle
        hub = self._hub
        me = getcurrent()
        life = WorkerLife(self._setup, self.kind)
        life.begin(me)  # worker_state() of this greenlet, and the initializer
        plain = self._setup.plain
        keep_idle = _KEEP_IDLE if plain else self.size
        finalize = False  # only a worker that leaves in order runs the finalizer
        try:
            while True:
                try:
                    fut, fn, args, kwargs, timeout = pending.popleft()
                except IndexError:
                    if self._state or len(idle) >= keep_idle:
                        finalize = True
                        return
                    idle.append(me)
                    del self  # parked: the last reference to a dropped executor may go here
                    try:
                        woken = hub.switch()  # the executor from _dispatch, False from close or the finalizer
                    except BaseException:  # killed while parked
                        if me in idle:
                            idle.remove(me)
                        raise
                    if woken is False:
                        finalize = True
                        return
                    self = woken
                    del woken
                    self._unclaimed -= 1
                    continue
                if not plain and not life.take(fut):
                    del fut, fn, args, kwargs
                    continue
                if not fut.set_running_or_notify_cancel():
                    del fut, fn, args, kwargs
                    continue
                running[me] = fut
                if timeout is not None:
                    self._run_timed(me, fut, fn, args, kwargs, timeout)
                else:
                    # A kill by terminate() lands here as GreenletExit: the future
                    # is already failed, try_set_exception is a no-op, and the
                    # queue is empty, so the worker ends.
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException as exc:
                        fut.try_set_exception(exc)
                    else:
                        fut.try_set_result(result)
                        del result
                del running[me]
                del fut, fn, args, kwargs  # a parked worker holds no task, args or result
                if not plain and life.spent:
                    finalize = True
                    self._replace_worker(me, life)
                    return
        finally:
            running.pop(me, None)
            life.end(finalize)

    def _replace_worker(self, me: Any, life: WorkerLife) -> None:
        """``max_tasks_per_worker``: run the finalizer, then leave the pool and
        start a new worker if tasks are queued (the leaving greenlet would hold
        its slot until it is dead)."""
        life.end()
        life.setup = WorkerSetup()  # the finally of _work only unbinds now
        self._pool.discard(me)
        if self._closing:
            self._check_drained()
        if self._pending and len(self._workers) < self.size:
            self._spawn()

    def _run_timed(
        self, me: Any, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float
    ) -> None:
        expiry: list[BaseException] = []  # the exception thrown in, once the timer fired
        deadline = _monotonic() + timeout
        timer = self._loop.timer(timeout)
        timer.start(self._expire, me, fut, expiry, timeout)
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            if expiry and exc is expiry[0]:
                fut.try_set_exception(self._timeout_error(fn, args, kwargs, timeout))
            else:
                fut.try_set_exception(exc)
        else:
            if _monotonic() >= deadline:
                # It computed past its deadline without yielding, so the timer could not
                # fire in time: the task has timed out all the same, as on threads.
                fut.try_set_exception(
                    TaskTimeoutError(f"{describe_call(fn, args, kwargs)} ran past its timeout of {timeout} s without yielding to the hub")
                )
            else:
                fut.try_set_result(result)
        finally:
            timer.close()

    def _call_later(self, delay: float, fn: Callable[[Any], object]) -> None:
        # a retry's backoff: a libev timer in the hub thread, the base timer thread elsewhere
        if not self._in_hub_thread():
            super()._call_later(delay, fn)
            return
        timer = self._loop.timer(delay)
        timer.start(self._call_now, timer, fn)

    @staticmethod
    def _call_now(timer: Any, fn: Callable[[Any], object]) -> None:
        timer.close()
        fn(None)

    @staticmethod
    def _timeout_error(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float) -> TaskTimeoutError:
        return TaskTimeoutError(f"{describe_call(fn, args, kwargs)} ran past its timeout of {timeout} s; its greenlet was killed")

    def _expire(self, me: Any, fut: Future[Any], expiry: list[BaseException], timeout: float) -> None:
        """Timer callback, in the hub: stop the task where it waits."""
        if fut.done():
            return
        exc = gevent.Timeout(timeout)
        expiry.append(exc)
        me.throw(exc)  # returns when the worker next switches to the hub
        if not fut.done():
            # The task caught the exception and runs on: fail its future anyway.
            fut.try_set_exception(
                TaskTimeoutError(f"the task ran past its timeout of {timeout} s and ignored the gevent.Timeout thrown to stop it")
            )

    # -- close / terminate ------------------------------------------------------------

    def _begin_close(self) -> None:
        """Hub side of close and terminate: watch every worker die and send the
        parked ones home. Hub thread only; idempotent."""
        if not self._closing:
            self._closing = True
            for glet in list(self._workers):
                glet.rawlink(self._on_worker_exit)
        idle = self._idle
        while idle:
            self._loop.run_callback(idle.pop().switch, False)
        self._check_drained()

    def _on_worker_exit(self, _glet: Any) -> None:
        """Link of every worker once closing; runs in the hub after the pool dropped it."""
        self._check_drained()

    def _check_drained(self) -> None:
        # <= 1: a close(wait=True) made inside a worker waits for the others only.
        if not self._pending and len(self._workers) <= 1:
            self._notify_idle()
            if self._retire_when_drained and not self._workers:
                self._retire_context()

    def _notify_idle(self) -> None:
        # pop() in place, never swap the list: a closer in another thread may be
        # appending to it right now (append and pop are atomic under the GIL).
        waiters = self._idle_waiters
        while waiters:
            waiters.pop().notify()

    def _drained(self, me: Any) -> bool:
        """No queued task and no worker left but, inside a worker, the caller."""
        if not self._workers:
            return not self._pending
        return len(self._workers) == 1 and me in self._workers

    def _in_hub_thread(self) -> bool:
        return _get_ident() == self._ident

    def _shutdown(self, wait: bool) -> None:
        # Retire the wait context only once no task is left: until then, waits in
        # this thread (on this executor's futures too) must keep yielding to the hub.
        self._retire_when_drained = True
        if self._in_hub_thread():
            me = getcurrent()
            self._begin_close()
        else:
            me = None
            self._ctx.bridge.call(self._begin_close)
        if wait:
            self._wait_drained(me)
        self._retire_context()

    def _wait_drained(self, me: Any) -> None:
        while not self._drained(me):
            waiter = _wait.current().waiter(self)
            self._idle_waiters.append(waiter)
            if self._drained(me):  # the last worker left before we registered
                break
            waiter.wait(None)

    def _cancel_queued(self) -> None:
        for item in list(self._pending):
            item[0].cancel()

    def _stop_running(self, fut: Future[Any]) -> None:
        """asyncio cancelled the awaiter of a running task: kill its greenlet."""

        def stop() -> None:
            for glet, running in list(self._running.items()):
                if running is fut and fut.try_set_exception(stopped_error()):
                    glet.kill(block=False)

        if _get_ident() == self._ident:
            stop()
        else:
            self._ctx.bridge.call(stop)

    def _terminate(self) -> None:
        dropped: list[Future[Any]] = []
        while True:
            try:
                dropped.append(self._pending.popleft()[0])
            except IndexError:
                break
        fail_unfinished(dropped)
        fail_unfinished(list(self._running.values()))
        self._retire_when_drained = True
        if self._in_hub_thread():
            self._kill_workers(block=getcurrent() is not self._hub)
            self._retire_context()
        else:
            self._ctx.bridge.call(self._kill_workers, False)

    def _kill_workers(self, block: bool) -> None:
        self._begin_close()
        me = getcurrent()
        others = [g for g in list(self._workers) if g is not me]
        if others:
            gevent.killall(others, block=block)
            if block:  # dead; now wait for the pool's links to drop them
                self._wait_drained(me)
        self._notify_idle()

    def _retire_context(self) -> None:
        """Remove the wait context from the creating thread once no worker is left
        (else a link of the last worker does it), if we are in that thread."""
        if not self._ctx_pushed or self._workers or self._pending or not self._in_hub_thread():
            return
        if self._per_greenlet_context and getcurrent() is not self._ctx_owner:
            return  # greenlet-local: only the creating greenlet can remove it
        self._ctx_pushed = False
        _wait.remove_context(self._ctx)

    # -- helpers (section 4 of the contract) --------------------------------------------

    def Lock(self) -> Lock:
        return Lock()

    def RLock(self) -> RLock:
        return RLock()

    def Event(self) -> Event:
        return Event()

    def Semaphore(self, value: int = 1) -> Semaphore:
        return Semaphore(value)

    def BoundedSemaphore(self, value: int = 1) -> BoundedSemaphore:
        return BoundedSemaphore(value)

    def Condition(self, lock: RLockLike | None = None) -> Condition:
        return Condition(lock)

    def Queue(self, maxsize: int = 0) -> Queue[Any]:
        return Queue(maxsize)

    def dict(self, *args: Any, **kwargs: Any) -> dict[Any, Any]:
        return dict(*args, **kwargs)


def _dropped(idle: list[Any], loop: Any, ctx: GeventWaitContext, ident: int) -> None:
    """An executor was collected (dropped without ``close()``, or closed
    before): send its parked workers home; remove its wait context if it is
    still in the creating thread's stack. Holds no reference to the executor."""

    def send_home() -> None:
        while idle:
            loop.run_callback(idle.pop().switch, False)

    if _get_ident() == ident:
        send_home()
        if ctx in getattr(_wait._local, "contexts", ()):  # (greenlet-local under monkey patching: the creator's only)
            _wait.remove_context(ctx)
    else:  # collected in another thread: only the hub's thread may touch its greenlets
        ctx.bridge.call(send_home)
