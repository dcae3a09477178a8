"""The ``greenlet`` kind: a deterministic cooperative scheduler on raw greenlet
switches in the thread that created the executor, with no gevent hub.

Data flow (everything below runs in one OS thread)::

    submit ──► executor._pending ──(one of `size` slots frees)──► loop.ready ◄─────────────┐
               (FIFO)                                             (run queue)              │
                                                                      │ pick: FIFO, or     │ woken: notify,
    a unifex wait in the caller ──► loop._run_until ──switch──► task greenlet              │ timer, sleep(0)
                                        ▲                             │ unifex wait        │
                                        └───────── park (switch to parent) ◄───────────────┘
    other OS threads ──► loop.inbox (+ wake the blocked caller) ──► drained by the loop

Decisions (docs/greenlet.md is the user's view):

* **One loop per thread.** Every greenlet executor made in a thread shares that
  thread's :class:`_Loop` (run queue, timers, clock), pushed as the thread's
  wait context, so waits that mix the futures of two greenlet executors work.
  The executors of one loop must agree on ``seed`` and ``clock``.
* **Tasks run only while the thread waits.** Any blocking unifex call in a
  non-task greenlet of that thread (the "caller") drives the loop until its
  waiter is notified or its timeout passes; a wait inside a task parks the task
  greenlet and switches back to whoever drives. Switches happen nowhere else.
* **Order.** ``ready`` is FIFO: tasks start in submission order as slots free;
  a task that sleeps 0 or is woken goes to the back. ``seed=N`` picks the next
  entry with ``random.Random(N)`` instead. With ``clock="real"`` a sleep of
  more than 0 ends by the wall clock, so only ``clock="virtual"`` makes
  programs with timed sleeps fully reproducible.
* **Virtual clock.** When nothing is runnable and nobody waits on something
  from outside the loop (a foreign future, another thread), the clock jumps to
  the next timer. Waits on foreign things block in real time and the virtual
  clock advances by the real time spent.
* **Deadlock.** A wait without a timeout raises :class:`~unifex.DeadlockError`
  when nothing is runnable, no timer is pending and no wait in the loop is on a
  foreign source. ``close()`` that finds its tasks deadlocked stops them (their
  futures fail with ``DeadlockError``) and raises it.
* **Stopping.** A per-task timeout, ``terminate()`` and a deadlock at close
  throw ``_Killed`` (a ``GreenletExit``) into the task greenlet; every later
  unifex wait in a killed task raises it again, so ``finally`` blocks run but
  cannot park. A task gets its greenlet only when it starts, so no kill ever
  hits an unstarted greenlet (a queued task is cancelled instead).
* **Worker greenlets.** A started task runs in a worker greenlet taken from the
  loop's idle list (or made); when the task ends the worker parks idle, which
  costs a switch instead of a greenlet's birth and death. The loop ends its
  idle workers when its last executor goes, so none outlives ``close()``.
* **Threads.** Waiters and helpers may be notified or used from any OS thread:
  other threads post to ``inbox`` and wake the blocked loop through a waiter of
  the wait context below the loop (a plain lock in a plain thread). Greenlets
  can only be switched in their own thread, so ``terminate()`` from another
  thread fails the futures at once and the owner thread kills the greenlets
  when it next waits; ``close(wait=True)`` from another thread blocks until the
  owner thread has run the tasks.
* **close(wait=False)** in the owner thread runs the accepted tasks too
  (SPEC 2: no other thread could run them). ``close()`` inside one of the
  executor's own tasks cannot wait for itself: it returns at once and the
  executor finishes when its last task does.
"""

from __future__ import annotations

import heapq
import itertools
import queue as _stdqueue
import random
import sys
import threading
import time
from _thread import allocate_lock
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, final

from greenlet import GreenletExit, getcurrent
from greenlet import greenlet as _greenlet

from .. import _wait
from .._base import BaseExecutor, describe_call, terminated_error
from .._errors import DeadlockError, TaskTimeoutError
from .._future import Future, _DoneQueue
from .._shared import wait_for

__all__ = [
    "GreenletBoundedSemaphore",
    "GreenletCondition",
    "GreenletEvent",
    "GreenletExecutor",
    "GreenletLock",
    "GreenletQueue",
    "GreenletRLock",
    "GreenletSemaphore",
]

_monotonic = time.monotonic
_get_ident = threading.get_ident
_CLOCKS = ("real", "virtual")
_MAX_LISTED = 12  # tasks named in a deadlock message before "... and N more"
_MAX_IDLE = 256  # idle worker greenlets a loop keeps for reuse


class _Killed(GreenletExit):  # type: ignore[misc]
    """Thrown into a task greenlet to stop it; never seen by users (the future
    carries TaskTimeoutError, TerminatedError or DeadlockError)."""


class _TaskGreenlet(_greenlet):  # type: ignore[misc]
    """A worker greenlet: runs one task after another (starting a fresh
    greenlet per task costs several times more than a switch into an idle one).
    ``_unifex_task`` is the task it runs now (None while idle), so a wait finds
    its task cheaply."""

    __slots__ = ("_unifex_task",)


class _Task:
    __slots__ = ("args", "ex", "finished", "fn", "fut", "g", "kill_error", "killed", "kwargs", "number", "timeout", "timer", "waiter")

    def __init__(
        self,
        ex: GreenletExecutor,
        fut: Future[Any],
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        timeout: float | None,
    ) -> None:
        self.ex = ex
        self.fut = fut
        self.fn = fn
        self.args = args
        self.kwargs = kwargs
        self.timeout = timeout
        self.g: Any = None  # its worker greenlet while it runs
        self.finished = False
        self.waiter: _TaskWaiter | None = None  # what it is parked on; None while runnable
        self.timer: list[Any] | None = None  # its per-task timeout entry
        self.killed = False
        self.kill_error: BaseException | None = None
        self.number = next(ex._numbers)

    def describe(self) -> str:
        """``#3 f(1, 2)``: the task's submission number and its call."""
        return f"#{self.number} {describe_call(self.fn, self.args, self.kwargs)}"

    def name(self) -> str:
        """``#3 f``: short, for helper reprs (a call's arguments may be helpers
        whose repr names this task)."""
        return f"#{self.number} {getattr(self.fn, '__qualname__', None) or repr(self.fn)}"


def _current_task() -> _Task | None:
    g = getcurrent()
    if type(g) is _TaskGreenlet:
        return g._unifex_task  # type: ignore[no-any-return]
    return None


def _me() -> Any:
    """Who is calling, for lock ownership: the task (a worker greenlet runs many
    tasks, one after another), else the greenlet."""
    g = getcurrent()
    if type(g) is _TaskGreenlet:
        return g._unifex_task
    return g


def _describe_holder(holder: Any) -> str:
    if isinstance(holder, _Task):
        return f"task {holder.name()}" + (" (which ended without releasing it)" if holder.finished else "")
    if getattr(holder, "parent", False) is None:
        return "the caller"
    return repr(holder)


# -- waiters -----------------------------------------------------------------------


class _TaskWaiter:
    """A wait inside a task: parks the task greenlet until notified."""

    __slots__ = ("notified", "source", "task")

    def __init__(self, task: _Task, source: object) -> None:
        self.task = task
        self.source = source
        self.notified = False

    def notify(self) -> None:
        if self.notified:
            return
        self.notified = True
        task = self.task
        loop = task.ex._loop
        if _get_ident() == loop.ident:
            if task.waiter is self:
                task.waiter = None
                loop.ready.append(task)
                if loop.blocker is not None:  # notified by a gevent greenlet while the loop blocks in gevent
                    loop.signal()
        else:
            loop.post(loop.wake, self)

    def wait(self, timeout: float | None) -> bool:
        if self.notified:
            return True
        task = self.task
        if task.killed:
            raise _Killed
        if timeout is not None and timeout <= 0:
            return False
        loop = task.ex._loop
        return loop.park(task, self, timeout, not loop.internal(self.source))


class _DriverWaiter:
    """A wait in the caller (any non-task greenlet of the loop's thread): runs
    the loop until notified."""

    __slots__ = ("loop", "notified", "source")

    def __init__(self, loop: _Loop, source: object) -> None:
        self.loop = loop
        self.source = source
        self.notified = False

    def notify(self) -> None:
        if self.notified:
            return
        self.notified = True
        loop = self.loop
        if loop.blocker is not None:  # the loop blocks: wake it (from another thread, or a gevent greenlet)
            loop.signal()

    def wait(self, timeout: float | None) -> bool:
        if self.notified:
            return True
        if timeout is not None and timeout <= 0:
            return False
        loop = self.loop
        return loop.drive(self, timeout, not loop.internal(self.source))


# -- the per-thread loop -----------------------------------------------------------


class _ThreadLoop(threading.local):
    loop: _Loop | None = None


_this_thread = _ThreadLoop()


class _Loop:
    """The scheduler of one OS thread, shared by its greenlet executors; also
    that thread's wait context (see :mod:`unifex._wait`)."""

    def __init__(self, seed: int | None, clock: str) -> None:
        self.ident = _get_ident()
        self.seed = seed
        self.clock = clock
        self.rng = None if seed is None else random.Random(seed)
        self.virtual = clock == "virtual"
        self.vnow = _monotonic()
        self.ready: deque[_Task] = deque()
        self.inbox: deque[tuple[Callable[[Any], object], Any]] = deque()
        self.timers: list[list[Any]] = []  # heap of [when, seq, fn or None when cancelled, arg]
        self.cancelled = 0
        self.seq = itertools.count()
        self.executors: dict[GreenletExecutor, None] = {}
        self.foreign = 0  # waits in progress on something outside this loop
        self.blocker: _wait.Waiter | None = None  # set while the thread blocks
        self.idle: list[Any] = []  # worker greenlets waiting for a task
        self.dead = False

    def __repr__(self) -> str:
        return f"<unifex greenlet scheduler seed={self.seed!r} clock={self.clock!r}>"

    @classmethod
    def for_this_thread(cls, seed: int | None, clock: str) -> _Loop:
        loop = _this_thread.loop
        if loop is not None and not loop.dead:
            if loop.seed != seed or loop.clock != clock:
                raise ValueError(
                    f"a greenlet executor with seed={loop.seed!r}, clock={loop.clock!r} is open in this thread, and the greenlet "
                    f"executors of one thread share one scheduler; close it before making one with seed={seed!r}, clock={clock!r}, "
                    "or give both the same options"
                )
            return loop
        if loop is not None:
            _wait.remove_context(loop)
        loop = _this_thread.loop = cls(seed, clock)
        _wait.push_context(loop)
        return loop

    def retire(self) -> None:
        """The last executor left: stop being this thread's wait context."""
        self.dead = True
        if _get_ident() == self.ident:
            _wait.remove_context(self)
            if _this_thread.loop is self:
                _this_thread.loop = None
            idle, self.idle = self.idle, []
            cur = getcurrent()
            for g in idle:  # end the idle workers: no greenlet outlives the last executor
                g.parent = cur
                g.switch(None)

    # -- clock and timers ----------------------------------------------------------

    def now(self) -> float:
        """This loop's clock: ``time.monotonic()``, or the virtual clock."""
        return self.vnow if self.virtual else _monotonic()

    def call_at(self, when: float, fn: Callable[[Any], object], arg: Any) -> list[Any]:
        entry = [when, next(self.seq), fn, arg]
        heapq.heappush(self.timers, entry)
        return entry

    def cancel(self, entry: list[Any]) -> None:
        if entry[2] is not None:
            entry[2] = None
            self.cancelled += 1
            timers = self.timers
            # many early-notified timed waits would otherwise pile up until their deadlines
            if self.cancelled > 256 and self.cancelled * 2 > len(timers):
                timers[:] = [e for e in timers if e[2] is not None]
                heapq.heapify(timers)
                self.cancelled = 0

    def next_timer(self) -> float | None:
        timers = self.timers
        while timers and timers[0][2] is None:
            heapq.heappop(timers)
            self.cancelled -= 1
        return timers[0][0] if timers else None

    def fire_due(self) -> bool:
        timers = self.timers
        now = self.now()
        fired = False
        while timers:
            entry = timers[0]
            fn = entry[2]
            if fn is None:
                heapq.heappop(timers)
                self.cancelled -= 1
                continue
            if entry[0] > now:
                break
            heapq.heappop(timers)
            entry[2] = None  # fired: a later cancel() must not count it
            fn(entry[3])
            fired = True
        return fired

    # -- wake-ups ------------------------------------------------------------------

    def internal(self, source: object) -> bool:
        """Whether ``source`` belongs to an executor of this loop (a wait on it
        can only end by something this loop runs)."""
        owner = source if type(source) is GreenletExecutor else getattr(source, "_owner", None)
        return type(owner) is GreenletExecutor and owner._loop is self

    def wake(self, waiter: _TaskWaiter) -> None:
        task = waiter.task
        if task.waiter is waiter:
            task.waiter = None
            self.ready.append(task)

    def post(self, fn: Callable[[Any], object], arg: Any) -> None:
        """From another OS thread: run ``fn(arg)`` in the loop's thread."""
        self.inbox.append((fn, arg))
        self.signal()

    def signal(self) -> None:
        blocker = self.blocker
        if blocker is not None:
            blocker.notify()

    def drain(self) -> None:
        inbox = self.inbox
        while inbox:
            fn, arg = inbox.popleft()
            fn(arg)

    # -- the wait context ------------------------------------------------------------

    def below(self) -> _wait.WaitContext:
        """The wait context under this loop in its thread (plain blocking if none)."""
        contexts = _wait._local.contexts
        for i in range(len(contexts) - 1, 0, -1):
            if contexts[i] is self:
                return contexts[i - 1]
        return _wait.THREAD

    def _not_ours(self, g: Any) -> _wait.WaitContext | None:
        """Where a wait in a non-task greenlet ``g`` should go instead of this loop."""
        if self.dead:
            if self in _wait._local.contexts:
                _wait.remove_context(self)
            return _wait.current()
        if g.parent is not None:
            # a gevent greenlet of a gevent executor in this thread: leave it to gevent's context
            gevent = sys.modules.get("gevent")
            if gevent is not None and isinstance(g, gevent.Greenlet):
                return self.below()
        return None

    def waiter(self, source: object) -> _wait.Waiter:
        g = getcurrent()
        if type(g) is _TaskGreenlet:
            return _TaskWaiter(g._unifex_task, source)
        other = self._not_ours(g)
        if other is not None:
            return other.waiter(source)
        return _DriverWaiter(self, source)

    def sleep(self, seconds: float) -> None:
        g = getcurrent()
        if type(g) is _TaskGreenlet:
            task: _Task = g._unifex_task
            if task.killed:
                raise _Killed
            if seconds <= 0:
                self.ready.append(task)
                g.parent.switch()
                if task.killed:  # killed while queued: the throw normally ends it first
                    raise _Killed
                return
            self.park(task, _TaskWaiter(task, None), seconds, False)
            return
        other = self._not_ours(g)
        if other is not None:
            other.sleep(seconds)
        elif seconds <= 0:
            self.round()
        else:
            self.drive(_DriverWaiter(self, None), seconds, False)

    # -- running -------------------------------------------------------------------

    def park(self, task: _Task, waiter: _TaskWaiter, timeout: float | None, foreign: bool) -> bool:
        """Suspend ``task`` until ``waiter`` is woken (by notify or its timeout)."""
        entry = None if timeout is None else self.call_at(self.now() + timeout, self.wake, waiter)
        if foreign:
            self.foreign += 1
        task.waiter = waiter
        try:
            task.g.parent.switch()
        finally:
            task.waiter = None
            if foreign:
                self.foreign -= 1
            if entry is not None:
                self.cancel(entry)
        return waiter.notified

    def drive(self, waiter: _DriverWaiter, timeout: float | None, foreign: bool) -> bool:
        deadline = None if timeout is None else self.now() + timeout
        if foreign:
            self.foreign += 1
        try:
            return self._run_until(waiter, deadline)
        finally:
            if foreign:
                self.foreign -= 1

    def _run_until(self, waiter: _DriverWaiter, deadline: float | None) -> bool:
        me = getcurrent()
        ready = self.ready
        inbox = self.inbox
        timers = self.timers
        virtual = self.virtual
        while not waiter.notified:
            if inbox:
                self.drain()
            if ready:
                self.step(me)
                if timers and not virtual and timers[0][0] <= _monotonic():
                    self.fire_due()
                continue
            if timers and self.fire_due():
                continue
            if waiter.notified or inbox:
                continue
            now = self.now()
            if deadline is not None and deadline <= now:
                return False
            until = self.next_timer()
            if until is None or (deadline is not None and deadline < until):
                until = deadline
            if until is None:
                if self.foreign == 0:
                    raise self.deadlock(waiter)
                self.block(waiter, None)
            elif virtual and self.foreign == 0:
                self.vnow = until
            else:
                self.block(waiter, until - now)
        return True

    def round(self) -> None:
        """The caller's ``sleep(0)``: let each task runnable now run once."""
        me = getcurrent()
        if self.inbox:
            self.drain()
        if self.timers:
            self.fire_due()
        for _ in range(len(self.ready)):
            if not self.ready:
                break
            self.step(me)

    def block(self, waiter: _DriverWaiter, seconds: float | None) -> None:
        """Nothing to run: block the thread until another thread posts, the
        caller is notified, or ``seconds`` pass."""
        blocker = self.below().waiter(self)
        self.blocker = blocker
        start = _monotonic()
        try:
            if not self.inbox and not waiter.notified:  # re-check: a notify may have come before blocker was set
                blocker.wait(seconds)
        finally:
            self.blocker = None
            if self.virtual:
                self.vnow += _monotonic() - start

    def step(self, me: Any) -> None:
        """Run the next ready task until it parks or ends."""
        ready = self.ready
        rng = self.rng
        if rng is None or len(ready) == 1:
            task = ready.popleft()
        else:
            i = rng.randrange(len(ready))
            task = ready[i]
            del ready[i]
        g = task.g
        if g is not None:
            if g.parent is not me:
                g.parent = me
            g.switch()
        elif not task.finished:  # (a stale entry of a task stopped while queued here is skipped)
            self.start(task, me)

    def start(self, task: _Task, me: Any) -> None:
        if not task.fut.set_running_or_notify_cancel():
            task.ex._finish(task)
            return
        idle = self.idle
        if idle:
            g = idle.pop()
            if g.parent is not me:
                g.parent = me
        else:
            g = _TaskGreenlet(_worker, me)
        task.g = g
        if task.timeout is not None:
            task.timer = self.call_at(self.now() + task.timeout, _expire, task)
        g.switch(task)

    def kill(self, task: _Task, error: BaseException) -> None:
        """Stop ``task`` now; its future fails with ``error`` (a queued task is cancelled)."""
        task.killed = True
        task.kill_error = error
        fut = task.fut
        g = task.g
        if g is None:
            if not task.finished and not fut.cancel():
                fut.try_set_exception(error)
            return
        cur = getcurrent()
        if g is cur:  # a task stopping itself: it ends at its next wait
            fut.try_set_exception(error)
            return
        task.waiter = None
        if g.parent is not cur:
            g.parent = cur
        g.throw(_Killed)
        fut.try_set_exception(error)

    # -- deadlock --------------------------------------------------------------------

    def describe_source(self, source: object) -> str:
        if source is None:
            return "nothing (it is sleeping)"
        if type(source) is GreenletExecutor:
            return "close() of its executor, for its unfinished tasks"
        if isinstance(source, Future):
            owner = source._owner
            if type(owner) is GreenletExecutor:
                for task in itertools.chain(owner._active, owner._pending):
                    if task.fut is source:
                        state = "not started" if task.g is None else "started"
                        return f"the result of task {task.describe()} ({state})"
            return repr(source)
        if isinstance(source, _DoneQueue):
            return "the first of several futures to finish (unifex.wait, as_completed or an unordered map)"
        return repr(source)

    def deadlock(self, waiter: _DriverWaiter) -> DeadlockError:
        parts = [f"the caller waits on {self.describe_source(waiter.source)}"]
        listed = 0
        more = 0
        for ex in self.executors:
            for task in ex._active:
                if listed >= _MAX_LISTED:
                    more += 1
                    continue
                listed += 1
                what = task.waiter.source if task.waiter is not None else None
                parts.append(f"task {task.describe()} waits on {self.describe_source(what)}")
            queued = sum(1 for t in ex._pending if not t.fut.done())
            if queued:
                parts.append(f"{queued} more tasks are queued for a free slot (size={ex.size})")
        if more:
            parts.append(f"... and {more} more tasks")
        who = "; ".join(parts)
        return DeadlockError(
            "deadlock: no greenlet task can run, none is sleeping, and the caller and every task wait on each other, so this "
            f"wait would never end. {who[0].upper()}{who[1:]}. Fix the order in which they wait (who sets what, who takes which "
            "lock first), raise size if tasks wait for queued tasks, or give the wait a timeout to get TimeoutError instead."
        )


def _worker(task: _Task | None) -> None:
    """The body of a worker greenlet: run tasks until told to stop (None) or
    until enough workers idle."""
    g = getcurrent()
    while task is not None:
        g._unifex_task = task
        _run_task(task)
        g._unifex_task = None
        loop = task.ex._loop
        task = None
        if loop.dead or len(loop.idle) >= _MAX_IDLE:
            return
        loop.idle.append(g)
        task = g.parent.switch()


def _run_task(task: _Task) -> None:
    """Run one task in its worker greenlet, settle its future, free its slot."""
    fut = task.fut
    try:
        result = task.fn(*task.args, **task.kwargs)
    except KeyboardInterrupt as exc:
        # Ctrl-C landed in a task: fail it and let it reach the caller too
        fut.try_set_exception(task.kill_error or exc)
        task.ex._finish(task)
        raise
    except BaseException as exc:
        fut.try_set_exception(task.kill_error or exc)
    else:
        timer = task.timer
        if timer is not None and task.ex._loop.now() >= timer[0]:
            # it overran without a switch point where the timer could stop it
            fut.try_set_exception(
                TaskTimeoutError(
                    f"task {task.describe()} ran past its timeout of {task.timeout} s without reaching a unifex wait; its result was dropped"
                )
            )
        else:
            fut.try_set_result(result)
    task.ex._finish(task)


def _expire(task: _Task) -> None:
    task.timer = None
    if not task.fut.done():
        task.ex._loop.kill(task, TaskTimeoutError(f"task {task.describe()} ran past its timeout of {task.timeout} s and was stopped"))


# -- the executor --------------------------------------------------------------------


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

    @classmethod
    def test_configurations(cls) -> list[tuple[str, dict[str, Any]]]:
        # FIFO and a shuffled order must both honour the contract. Not the
        # virtual clock: the suite rightly checks that real sleeps take real time.
        return [("greenlet", {}), ("greenlet-seed", {"seed": 20240601})]

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
            if loop.blocker is not None:  # submitted by a gevent greenlet while the loop blocks in gevent
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


# -- helpers -------------------------------------------------------------------------
#
# Each helper keeps FIFO waiter entries and hands what it guards (a lock, a
# permit, an item) directly to the first waiter, so the order is deterministic
# and no woken waiter finds its prize taken. A tiny mutex makes each operation
# atomic for other OS threads too; it is never held across a wait.


class _Entry:
    __slots__ = ("granted", "item", "waiter", "who")

    def __init__(self, waiter: _wait.Waiter, item: Any = None) -> None:
        self.waiter = waiter
        self.granted = False
        self.item = item
        self.who: Any = None


def _block(mutex: Any, entries: deque[_Entry], entry: _Entry, timeout: float | None, abandon: Callable[[_Entry], None]) -> bool:
    """Wait for ``entry`` to be granted; on timeout withdraw it. If the wait
    is interrupted (a kill, a deadline) after the grant, pass the grant on."""
    try:
        ok = entry.waiter.wait(timeout)
    except BaseException:
        with mutex:
            granted = entry.granted
            if not granted:
                entries.remove(entry)
        if granted:
            abandon(entry)
        raise
    if ok:
        return True
    with mutex:
        if entry.granted:
            return True
        entries.remove(entry)
        return False


def _lock_timeout(blocking: bool, timeout: float) -> float | None:
    """Check ``acquire(blocking, timeout)`` arguments as ``threading.Lock`` does."""
    if not blocking:
        if timeout != -1:
            raise ValueError("can't specify a timeout for a non-blocking call")
        return None
    if timeout < 0 and timeout != -1:
        raise ValueError("timeout value must be a non-negative number")
    return None if timeout == -1 else timeout


class _Helper:
    __slots__ = ("__weakref__", "_mutex", "_owner")

    def __init__(self, owner: GreenletExecutor) -> None:
        self._mutex = allocate_lock()
        self._owner = owner

    def __reduce__(self) -> Any:
        raise TypeError(f"{self!r} works only inside its own process and thread; it cannot be pickled")


class GreenletLock(_Helper):
    """``threading.Lock`` on the scheduler: a blocking acquire parks the task."""

    __slots__ = ("_holder", "_locked", "_waiters")

    def __init__(self, owner: GreenletExecutor) -> None:
        super().__init__(owner)
        self._locked = False
        self._holder: Any = None
        self._waiters: deque[_Entry] = deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        wait_for = _lock_timeout(blocking, timeout)
        with self._mutex:
            if not self._locked:
                self._locked = True
                self._holder = _me()
                return True
            if not blocking:
                return False
            entry = _Entry(_wait.current().waiter(self))
            entry.who = _me()
            self._waiters.append(entry)
        return _block(self._mutex, self._waiters, entry, wait_for, self._abandon)

    def _abandon(self, entry: _Entry) -> None:
        self.release()

    def release(self) -> None:
        with self._mutex:
            if not self._locked:
                raise RuntimeError("release unlocked lock")
            if not self._waiters:
                self._locked = False
                self._holder = None
                return
            entry = self._waiters.popleft()
            entry.granted = True
            self._holder = entry.who
        entry.waiter.notify()

    def locked(self) -> bool:
        return self._locked

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()

    # for GreenletCondition
    def _is_owned(self) -> bool:
        return self._locked and self._holder is _me()

    def _release_save(self) -> None:
        self.release()

    def _acquire_restore(self, state: None) -> None:
        self.acquire()

    def __repr__(self) -> str:
        if not self._locked:
            return "<unifex greenlet Lock unlocked>"
        waiting = f", {len(self._waiters)} waiting" if self._waiters else ""
        return f"<unifex greenlet Lock held by {_describe_holder(self._holder)}{waiting}>"


class GreenletRLock(_Helper):
    """``threading.RLock`` on the scheduler; the owner is the task (greenlet)."""

    __slots__ = ("_count", "_holder", "_waiters")

    def __init__(self, owner: GreenletExecutor) -> None:
        super().__init__(owner)
        self._holder: Any = None
        self._count = 0
        self._waiters: deque[_Entry] = deque()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        wait_for = _lock_timeout(blocking, timeout)
        me = _me()
        with self._mutex:
            if self._holder is None:
                self._holder = me
                self._count = 1
                return True
            if self._holder is me:
                self._count += 1
                return True
            if not blocking:
                return False
            entry = _Entry(_wait.current().waiter(self))
            entry.who = me
            self._waiters.append(entry)
        return _block(self._mutex, self._waiters, entry, wait_for, self._abandon)

    def _abandon(self, entry: _Entry) -> None:
        self._release_all()

    def release(self) -> None:
        with self._mutex:
            if self._holder is not _me():
                raise RuntimeError("cannot release un-acquired lock")
            self._count -= 1
            if self._count:
                return
            entry = self._hand_over()
        if entry is not None:
            entry.waiter.notify()

    def _hand_over(self) -> _Entry | None:
        if not self._waiters:
            self._holder = None
            return None
        entry = self._waiters.popleft()
        entry.granted = True
        self._holder = entry.who
        self._count = 1
        return entry

    def _release_all(self) -> int:
        with self._mutex:
            count = self._count
            self._count = 0
            entry = self._hand_over()
        if entry is not None:
            entry.waiter.notify()
        return count

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()

    def _is_owned(self) -> bool:
        return self._holder is _me()

    def _release_save(self) -> int:
        if self._holder is not _me():
            raise RuntimeError("cannot release un-acquired lock")
        return self._release_all()

    def _acquire_restore(self, count: int) -> None:
        self.acquire()
        self._count = count

    def __repr__(self) -> str:
        if self._holder is None:
            return "<unifex greenlet RLock unlocked>"
        waiting = f", {len(self._waiters)} waiting" if self._waiters else ""
        return f"<unifex greenlet RLock held by {_describe_holder(self._holder)} (depth {self._count}){waiting}>"


class GreenletSemaphore(_Helper):
    """``threading.Semaphore`` on the scheduler."""

    __slots__ = ("_initial", "_value", "_waiters")

    def __init__(self, owner: GreenletExecutor, value: int = 1) -> None:
        if value < 0:
            raise ValueError(f"semaphore initial value must be >= 0, not {value!r}")
        super().__init__(owner)
        self._value = value
        self._initial = value
        self._waiters: deque[_Entry] = deque()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if not blocking and timeout is not None:
            raise ValueError("can't specify timeout for non-blocking acquire")
        with self._mutex:
            if self._value > 0:
                self._value -= 1
                return True
            if not blocking:
                return False
            entry = _Entry(_wait.current().waiter(self))
            self._waiters.append(entry)
        return _block(self._mutex, self._waiters, entry, timeout, self._abandon)

    def _abandon(self, entry: _Entry) -> None:
        self.release()

    def _check_release(self, n: int) -> None:
        pass

    def release(self, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be one or more")
        granted = []
        with self._mutex:
            self._check_release(n)
            waiters = self._waiters
            while n and waiters:
                entry = waiters.popleft()
                entry.granted = True
                granted.append(entry)
                n -= 1
            self._value += n
        for entry in granted:
            entry.waiter.notify()

    __enter__ = acquire

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        waiting = f", {len(self._waiters)} waiting" if self._waiters else ""
        return f"<unifex greenlet {type(self).__name__[8:]} value={self._value}{waiting}>"


class GreenletBoundedSemaphore(GreenletSemaphore):
    """``threading.BoundedSemaphore``: releasing above the initial value raises ``ValueError``."""

    __slots__ = ()

    def _check_release(self, n: int) -> None:
        if self._value + n > self._initial:
            raise ValueError(f"Semaphore released too many times (initial value {self._initial})")


class GreenletEvent(_Helper):
    """``threading.Event`` on the scheduler."""

    __slots__ = ("_flag", "_waiters")

    def __init__(self, owner: GreenletExecutor) -> None:
        super().__init__(owner)
        self._flag = False
        self._waiters: list[_wait.Waiter] = []

    def is_set(self) -> bool:
        return self._flag

    isSet = is_set

    def set(self) -> None:
        with self._mutex:
            self._flag = True
            waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.notify()

    def clear(self) -> None:
        self._flag = False

    def wait(self, timeout: float | None = None) -> bool:
        with self._mutex:
            if self._flag:
                return True
            waiter = _wait.current().waiter(self)
            self._waiters.append(waiter)
        try:
            ok = waiter.wait(timeout)
        finally:
            if not _waiter_notified(waiter):
                with self._mutex:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
        return ok or self._flag

    def __repr__(self) -> str:
        if self._flag:
            return "<unifex greenlet Event set>"
        return f"<unifex greenlet Event not set ({len(self._waiters)} waiting)>"


def _waiter_notified(waiter: _wait.Waiter) -> bool:
    """Whether a waiter was notified; unknown kinds (plain threads) count as not."""
    return bool(getattr(waiter, "notified", False))


class GreenletCondition(_Helper):
    """``threading.Condition`` on the scheduler; the default lock is a :class:`GreenletRLock`."""

    __slots__ = ("_lock", "_waiters", "acquire", "release")

    def __init__(self, owner: GreenletExecutor, lock: Any = None) -> None:
        super().__init__(owner)
        if lock is None:
            lock = GreenletRLock(owner)
        self._lock = lock
        self.acquire = lock.acquire
        self.release = lock.release
        self._waiters: deque[_wait.Waiter] = deque()

    def __enter__(self) -> bool:
        return bool(self._lock.__enter__())

    def __exit__(self, *exc: object) -> None:
        self._lock.__exit__(*exc)

    def _is_owned(self) -> bool:
        lock = self._lock
        if hasattr(lock, "_is_owned"):
            return bool(lock._is_owned())
        if lock.acquire(False):
            lock.release()
            return False
        return True

    def _release_save(self) -> Any:
        lock = self._lock
        if hasattr(lock, "_release_save"):
            return lock._release_save()
        lock.release()
        return None

    def _acquire_restore(self, state: Any) -> None:
        lock = self._lock
        if hasattr(lock, "_acquire_restore"):
            lock._acquire_restore(state)
        else:
            lock.acquire()

    def wait(self, timeout: float | None = None) -> bool:
        if not self._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        waiter = _wait.current().waiter(self)
        with self._mutex:
            self._waiters.append(waiter)
        saved = self._release_save()
        ok = False
        try:
            ok = waiter.wait(timeout)
            return ok
        finally:
            if not ok:
                with self._mutex:
                    if waiter in self._waiters:
                        self._waiters.remove(waiter)
            self._acquire_restore(saved)

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        return wait_for(self, predicate, timeout)

    def notify(self, n: int = 1) -> None:
        if not self._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        with self._mutex:
            woken = [self._waiters.popleft() for _ in range(min(n, len(self._waiters)))]
        for waiter in woken:
            waiter.notify()

    def notify_all(self) -> None:
        self.notify(len(self._waiters))

    notifyAll = notify_all

    def __repr__(self) -> str:
        return f"<unifex greenlet Condition on {self._lock!r} ({len(self._waiters)} waiting)>"


class GreenletQueue(_Helper):
    """``queue.Queue`` on the scheduler, with ``task_done``/``join``; raises
    ``queue.Empty`` and ``queue.Full`` as the stdlib does."""

    __slots__ = ("_getters", "_items", "_joiners", "_putters", "maxsize", "unfinished_tasks")

    def __init__(self, owner: GreenletExecutor, maxsize: int = 0) -> None:
        super().__init__(owner)
        self.maxsize = maxsize
        self._items: deque[Any] = deque()
        self._getters: deque[_Entry] = deque()
        self._putters: deque[_Entry] = deque()
        self._joiners: list[_wait.Waiter] = []
        self.unfinished_tasks = 0

    def qsize(self) -> int:
        return len(self._items)

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        with self._mutex:
            if self._getters:  # the queue is empty and someone waits: hand the item over
                getter = self._getters.popleft()
                getter.item = item
                getter.granted = True
                self.unfinished_tasks += 1
            elif not (0 < self.maxsize <= len(self._items)):
                self._items.append(item)
                self.unfinished_tasks += 1
                return
            elif not block:
                raise _stdqueue.Full
            else:
                if timeout is not None and timeout < 0:
                    raise ValueError("'timeout' must be a non-negative number")
                getter = None
                entry = _Entry(_wait.current().waiter(self), item)
                self._putters.append(entry)
        if getter is not None:
            getter.waiter.notify()
            return
        if not _block(self._mutex, self._putters, entry, timeout, _ignore):
            raise _stdqueue.Full

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        entry = None
        putter = None
        with self._mutex:
            if self._items:
                item = self._items.popleft()
                if self._putters:  # room now: take the first waiting put's item in
                    putter = self._putters.popleft()
                    self._items.append(putter.item)
                    putter.granted = True
                    self.unfinished_tasks += 1
            elif not block:
                raise _stdqueue.Empty
            else:
                if timeout is not None and timeout < 0:
                    raise ValueError("'timeout' must be a non-negative number")
                entry = _Entry(_wait.current().waiter(self))
                self._getters.append(entry)
        if entry is None:
            if putter is not None:
                putter.waiter.notify()
            return item
        if _block(self._mutex, self._getters, entry, timeout, self._give_back):
            return entry.item
        raise _stdqueue.Empty

    def _give_back(self, entry: _Entry) -> None:
        """A getter was handed an item but was stopped before taking it."""
        with self._mutex:
            if self._getters:
                getter = self._getters.popleft()
                getter.item = entry.item
                getter.granted = True
            else:
                self._items.appendleft(entry.item)
                getter = None
        if getter is not None:
            getter.waiter.notify()

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def get_nowait(self) -> Any:
        return self.get(False)

    def task_done(self) -> None:
        with self._mutex:
            if self.unfinished_tasks <= 0:
                raise ValueError("task_done() called too many times")
            self.unfinished_tasks -= 1
            if self.unfinished_tasks:
                return
            joiners, self._joiners = self._joiners, []
        for waiter in joiners:
            waiter.notify()

    def join(self) -> None:
        with self._mutex:
            if not self.unfinished_tasks:
                return
            waiter = _wait.current().waiter(self)
            self._joiners.append(waiter)
        try:
            waiter.wait(None)
        finally:
            with self._mutex:
                if waiter in self._joiners:
                    self._joiners.remove(waiter)

    def __repr__(self) -> str:
        size = f"{len(self._items)}/{self.maxsize}" if self.maxsize > 0 else f"{len(self._items)}"
        parts = [f"size={size}"]
        if self._getters:
            parts.append(f"{len(self._getters)} get() waiting")
        if self._putters:
            parts.append(f"{len(self._putters)} put() waiting")
        if self._joiners:
            parts.append(f"join() waiting for {self.unfinished_tasks} task_done()")
        return f"<unifex greenlet Queue {', '.join(parts)}>"


def _ignore(entry: _Entry) -> None:
    """A put whose item was taken in already counts as done, stopped or not."""
