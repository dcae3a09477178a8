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
import linecache
import os
import random
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any

from greenlet import GreenletExit, getcurrent
from greenlet import greenlet as _greenlet

from ... import _wait
from ..._aio import run_coroutine
from ..._base import _Context, describe_call
from ..._errors import DeadlockError, TaskTimeoutError
from ..._future import Future, _DoneQueue

if TYPE_CHECKING:
    from .executor import GreenletExecutor

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

    def target(self) -> Callable[..., Any]:
        """The user's function (not the ``Context.run`` or coroutine runner wrapping it)."""
        fn, args = self.fn, self.args
        while args and (type(getattr(fn, "__self__", None)) is _Context or fn is run_coroutine):
            fn, args = args[0], args[1:]
        return fn

    def name(self) -> str:
        """``#3 f``: short, for helper reprs (a call's arguments may be helpers
        whose repr names this task)."""
        fn = self.target()
        return f"#{self.number} {getattr(fn, '__qualname__', None) or repr(fn)}"


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
                if loop.blockers:  # notified by a gevent greenlet while the loop blocks in gevent
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
        if loop.blockers:  # the loop blocks: wake it (from another thread, or a gevent greenlet)
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

    #: stays the thread's top wait context when a gevent executor comes after it:
    #: the loop blocks through the context below it and hands gevent's greenlets
    #: their own waits, so both kinds run in either order
    drives_below = True

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
        # weak: an executor dropped without close() is collected (see retire_if_unused)
        self.executors: weakref.WeakKeyDictionary[GreenletExecutor, None] = weakref.WeakKeyDictionary()
        self.foreign = 0  # waits in progress on something outside this loop
        # the waiters of the drivers blocked in the context below (several when gevent greenlets drive too);
        # a tuple replaced whole, so other threads read it without a lock
        self.blockers: tuple[_wait.Waiter, ...] = ()
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
        loop = cls(seed, clock)
        loop.install()
        return loop

    def install(self) -> None:
        """Make this loop the calling thread's scheduler; the greenlet executors
        made in this thread until it retires use it (:func:`unifex.testing.explore`
        installs a loop whose strategy picks the next task)."""
        old = _this_thread.loop
        if old is not None and not old.dead:
            raise RuntimeError(
                f"a greenlet executor is open in this thread ({old!r}); close it first: its tasks and the new scheduler's would mix"
            )
        if old is not None:
            _wait.remove_context(old)
        _this_thread.loop = self
        _wait.push_context(self)

    def retire_if_unused(self) -> None:
        """An executor of this loop was collected (dropped without ``close()``):
        retire if none is left, which ends the idle worker greenlets. Safe from
        any thread (posted to the loop's own)."""
        if self.dead:
            return
        if _get_ident() != self.ident:
            self.post(lambda _: self.retire_if_unused(), None)
        elif not list(self.executors):  # (iterating skips executors being collected right now)
            self.retire()

    def retire(self) -> None:
        """The last executor left: stop being this thread's wait context."""
        self.dead = True
        if _get_ident() == self.ident:
            _wait.remove_context(self)
            if _this_thread.loop is self:
                _this_thread.loop = None
            idle, self.idle = self.idle, []
            cur = getcurrent()
            for g in idle:  # end the idle workers (their task is None): no greenlet outlives the last executor
                g.parent = cur
                g.switch()

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
            entry[3] = None  # a cancelled entry waits in the heap: it must not keep its task (and future) alive
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
        # an executor of this loop, or a future or helper it owns (only greenlet executors have a _Loop)
        owner = getattr(source, "_owner", source)
        return getattr(owner, "_loop", None) is self

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
        for blocker in self.blockers:
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

    def _not_ours(self, g: Any, source: object) -> _wait.WaitContext | None:
        """Where a wait in a non-task greenlet ``g`` should go instead of this loop."""
        if self.dead:
            if self in _wait._local.contexts:
                _wait.remove_context(self)
            return _wait.current()
        if g.parent is not None:
            # A gevent greenlet of a gevent executor in this thread: its own waits
            # (sleeps, gevent futures) go to gevent's context. A wait on this loop's
            # futures or helpers drives the loop like the caller does (it blocks
            # through gevent's context, so the hub runs meanwhile): the loop may
            # have been made inside this very gevent task, with no other driver.
            gevent = sys.modules.get("gevent")
            if gevent is not None and isinstance(g, gevent.Greenlet) and not self._drives(source):
                return self.below()
        return None

    def _drives(self, source: object) -> bool:
        """Whether a wait on ``source`` in a gevent greenlet drives this loop:
        the source is this loop's, or a wait on futures of several owners."""
        return self.internal(source) or (type(source) is _DoneQueue and source._owner is None)

    def waiter(self, source: object) -> _wait.Waiter:
        g = getcurrent()
        if type(g) is _TaskGreenlet:
            return _TaskWaiter(g._unifex_task, source)
        other = self._not_ours(g, source)
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
        other = self._not_ours(g, None)
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
                    self.signal()  # other drivers blocked in gevent look again (and find the deadlock too)
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
        self.blockers = (*self.blockers, blocker)
        start = _monotonic()
        try:
            if not self.inbox and not waiter.notified:  # re-check: a notify may have come before blocker was set
                blocker.wait(seconds)
        finally:
            self.blockers = tuple(b for b in self.blockers if b is not blocker)
            if self.virtual:
                self.vnow += _monotonic() - start

    def step(self, me: Any) -> None:
        """Run the next ready task until it parks or ends (the exploring loop of
        :mod:`unifex.testing.explore` overrides this; keep the two in step)."""
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
        # handed over in an attribute, not as a switch argument: the first
        # switch's arguments stay referenced for as long as the worker runs
        g._unifex_task = task
        g.switch()

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
        from .executor import GreenletExecutor

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
                where = user_line(task.g)
                at = f", at {where}" if where else ""
                parts.append(f"task {task.describe()} waits on {self.describe_source(what)}{at}")
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


_PRODUCT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # .../unifex
_TESTING = os.path.join(_PRODUCT, "testing")


def user_frame(g: Any) -> FrameType | None:
    """The innermost frame of a suspended task greenlet ``g`` outside unifex's
    own code (``unifex.testing`` counts as the user's): where the task waits."""
    frame: FrameType | None = getattr(g, "gr_frame", None)
    while frame is not None:
        name = frame.f_code.co_filename
        if not name.startswith(_PRODUCT) or name.startswith(_TESTING):
            return frame
        frame = frame.f_back
    return None


def user_line(g: Any) -> str:
    """``file.py:12 (counter = total + 1)``: where a suspended task waits, or ''."""
    frame = user_frame(g)
    if frame is None:
        return ""
    line = linecache.getline(frame.f_code.co_filename, frame.f_lineno).strip().split("  #")[0].rstrip()
    text = f" ({line})" if line else ""
    return f"{os.path.basename(frame.f_code.co_filename)}:{frame.f_lineno}{text}"


def _worker() -> None:
    """The body of a worker greenlet: run the task in ``_unifex_task``, park, and
    again, until switched to with none (told to stop) or until enough workers
    idle. Once a task ends, nothing here refers to it, its future or its result."""
    g = getcurrent()
    task = g._unifex_task
    while task is not None:
        _run_task(task)
        g._unifex_task = None
        loop = task.ex._loop
        task = None
        if loop.dead or len(loop.idle) >= _MAX_IDLE:
            return
        loop.idle.append(g)
        g.parent.switch()
        task = g._unifex_task


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
