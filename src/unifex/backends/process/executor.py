"""The parent side of the ``process`` kind (the executor and its dispatcher thread): tasks run in worker processes the executor owns, one
task per worker at a time, so a crash, a timeout or ``terminate()`` is blamed on
and confined to exactly one task.

Data flow::

    caller threads                 parent: dispatcher thread                   worker processes (<= size)
    ==============                 =========================                   ==========================
    submit / apply_async / map
      pickle (fn, args, kwargs)
      (cloudpickle fallback;
      SerializationError here)
      append _Task ──────────────► _queue (deque)
      1 byte ──► wake pipe ──────► poll(): wake pipe, result pipes,
                                     worker sentinels, next deadline
                                   for each idle worker: pop a task,
                                     set_running_or_notify_cancel ──► task pipe ──► recv, unpickle,
                                                                                    run fn(*args, **kwargs)
                                   unpickle the reply, settle the    ◄── result ◄── pickle the result, or the
                                     future, run its done-callbacks      pipe        exception + traceback text
                                   sentinel fires (worker died):
                                     fail its task with WorkerCrashedError,         watcher thread: EOF on the
                                     release the unifex locks it held,              death pipe = the parent
                                     reap it (join); start a replacement            died → os._exit at once
                                     when a task needs one
                                   deadline passed: TaskTimeoutError,
                                     SIGTERM, SIGKILL after KILL_GRACE

Decisions, and why:

* Own workers from ``multiprocessing.get_context(start_method)`` with one pipe
  pair each, not ``ProcessPoolExecutor``/``Pool``: the parent must know which
  task each worker holds to blame a crash, kill one task on timeout, and keep
  the others going. Default start method: ``forkserver`` where available
  (``fork`` with the dispatcher thread running is unsafe), else ``spawn``.
* One task in flight per worker. Pipelining a second task into a busy worker
  would save a round trip, but a task queued behind one that waits for it (on an
  Event, a Queue) would deadlock even though another worker is free. ``map``
  gets its speed from chunks instead: ``chunksize=None`` picks
  ``ceil(n / (4 * size))`` when the input has a length, like
  ``multiprocessing.Pool.map``, and 1 for iterators of unknown length (tasks
  that wait for each other must each get a worker).
* Workers start on demand (a task is queued, no worker is idle, fewer than
  ``size`` exist), so a worker that dies is replaced by the next task that needs
  it, and a worker that cannot start fails tasks instead of respawning in a loop.
* Serialization: ``pickle`` first, ``cloudpickle`` when pickle cannot (lambdas,
  closures) and always for functions defined in ``__main__`` (by value: a worker
  may not be able to import ``__main__``, e.g. in an interactive session).
  Functions of other modules go by reference, so their module must be
  importable in the worker (it is for installed packages and test modules that
  pytest put on ``sys.path``); if it is not, the task fails with
  ``SerializationError`` saying so. A failure to pickle raises
  ``SerializationError`` from ``submit`` naming the function or the argument.
  A result or exception that cannot cross back fails that future only.
* A crash while a ``map`` chunk runs: the worker writes into shared memory
  where it is, once per block of ``_BLOCK`` items (once per item would cost as
  much as a tiny task). After a crash the parent runs the chunk again with
  exact positions from that block on; the item that crashes there fails with
  ``WorkerCrashedError`` at its position, as if it had raised, and the items
  before it, whose results died with the worker, run once more. An item before
  a crash may so run up to three times, the crashing one twice, the items after
  it not at all (``map`` stops at its first error); a crash that does not
  recur costs only the re-run. Use ``chunksize=1`` when a task must not run twice.
* Timeouts and ``terminate()`` send SIGTERM, then SIGKILL after
  ``KILL_GRACE`` seconds; killed workers are always joined (no zombies).
* Parent death: each worker has a watcher thread blocked reading a process-wide
  "death pipe" whose write end only the parent holds; the parent's exit closes
  it and the worker exits at once. Under ``fork`` and ``spawn`` the workers also
  ask Linux for SIGKILL when their parent dies (``PR_SET_PDEATHSIG``).
* Workers ignore SIGINT: Ctrl-C reaches the caller only, which then
  terminates the executor (``__exit__``), and workers print no tracebacks.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import select
import signal
import threading
import time
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, final

from ..._base import TERMINATED, BaseExecutor, describe_call, terminated_error
from ..._errors import SerializationError, TaskTimeoutError, WorkerCrashedError
from ..._future import Future
from ..._protocols import RLockLike
from ..._remote import RemoteTraceback, call_parts, describe_exception, exit_text, map_parts, unpicklable, which_part
from . import helpers as shared
from .callbacks import CallbackRunner, hold
from .wire import (
    _CALL,
    _INIT_FAILED,
    _LOST,
    _OK,
    _RAISED,
    _dumps_chunk,
    _dumps_task,
    _loads,
    _widen_pipe,
)
from .worker import _worker_main

__all__ = ["KILL_GRACE", "ProcessExecutor"]

logger = logging.getLogger("unifex")

#: seconds between SIGTERM and SIGKILL when a worker is stopped
KILL_GRACE = 0.25

_DESTINATION = "a worker process"
#: how often a timeout looks again whether a task its worker got has started
_START_POLL = 0.02
#: a task that has not started this long after its timeout (a worker stuck
#: unpickling it, say) times out anyway
_START_GRACE = 60.0

_monotonic = time.monotonic


# -- the parent ----------------------------------------------------------------------

_death_pipe: tuple[int, int] | None = None
_death_lock = threading.Lock()


def _get_death_pipe() -> tuple[int, int]:
    """One pipe per process: workers block reading it; only this process holds
    the write end, so its exit, however abrupt, wakes them all."""
    global _death_pipe
    with _death_lock:
        if _death_pipe is None:
            _death_pipe = os.pipe()
        return _death_pipe


def _after_fork_in_child() -> None:
    global _death_pipe
    _death_pipe = None
    _LIVE.clear()


_LIVE: weakref.WeakSet[ProcessExecutor] = weakref.WeakSet()


def _close_at_exit() -> None:
    """Like concurrent.futures: at interpreter exit, finish what was accepted."""
    for ex in list(_LIVE):
        if ex._pid == os.getpid():
            try:
                ex.close(wait=True)
            except BaseException:
                logger.exception("unifex: closing a process executor at exit failed")


os.register_at_fork(after_in_child=_after_fork_in_child)
threading._register_atexit(_close_at_exit)  # type: ignore[attr-defined]


class _Task:
    """One task on its way to a worker. ``resumed`` marks the re-run of the
    first items of a crashed chunk: its future is already running."""

    __slots__ = ("chunk", "crash_error", "exact_from", "flat", "fn", "fut", "payload", "requeued", "resumed", "start", "timeout", "what")

    def __init__(self, fut: Future[Any], payload: bytes, fn: Any, what: Any, timeout: float | None, chunk: list[Any] | None = None) -> None:
        self.fut = fut
        self.payload = payload
        self.fn = fn
        self.what = what  # (args, kwargs) of a call; the chunk's first item otherwise
        self.timeout = timeout
        self.chunk = chunk
        self.flat = False  # the chunk holds the items themselves, not argument tuples
        self.start = 0  # the position of the chunk's first item in the whole map
        self.exact_from = len(chunk) if chunk is not None else 0  # items from here on run with exact progress
        self.resumed = False
        self.requeued = 0  # times its worker died before reading it
        self.crash_error: BaseException | None = None  # the chunk's error if it ends without one of its own

    def _args(self, index: int) -> tuple[Any, ...]:
        assert self.chunk is not None
        item = self.chunk[index]
        return (item,) if self.flat else item  # type: ignore[no-any-return]

    def describe(self) -> str:
        if self.chunk is not None:
            return describe_call(self.fn, self._args(0) if self.chunk else ())
        args, kwargs = self.what
        return describe_call(self.fn, args, kwargs)


class _Worker:
    __slots__ = ("deadline", "dying", "handed", "kill_at", "pid", "proc", "result_fd", "results", "retiring", "sent", "sentinel", "slot", "task", "tasks")

    def __init__(self, proc: Any, tasks: multiprocessing.connection.Connection, results: multiprocessing.connection.Connection, slot: int) -> None:
        self.proc = proc
        self.pid: int = proc.pid
        self.tasks = tasks
        self.results = results
        self.result_fd: int | None = results.fileno()
        self.sentinel: int = proc.sentinel
        self.slot = slot
        self.task: _Task | None = None
        self.deadline: float | None = None  # when to look at the task's timeout next
        self.handed = 0.0  # when the task was handed over
        self.sent = 0
        self.retiring = False  # no more tasks: max_tasks_per_worker reached, or closing
        self.dying = False  # killed (timeout, terminate); waiting for its sentinel
        self.kill_at: float | None = None  # when to escalate SIGTERM to SIGKILL


def _how_it_ended(pid: int, exitcode: int | None) -> str:
    return f"worker pid {pid} {exit_text(exitcode)}"


@final
class ProcessExecutor(BaseExecutor):
    """Tasks in worker processes: crash-isolated, killable, with cross-process helpers."""

    kind: ClassVar[str] = "process"
    options: ClassVar[frozenset[str]] = frozenset({"start_method", "max_tasks_per_worker", "initializer", "initargs"})
    capabilities: ClassVar[frozenset[str]] = frozenset({"concurrent", "processes", "kill_running", "isolated_crash"})

    def __init__(
        self,
        size: int | None = None,
        *,
        start_method: str | None = None,
        max_tasks_per_worker: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
    ) -> None:
        methods = multiprocessing.get_all_start_methods()
        if start_method is None:
            start_method = "forkserver" if "forkserver" in methods else "spawn"
        elif start_method not in methods:
            raise ValueError(f"start_method must be one of {', '.join(repr(m) for m in methods)} on this platform, not {start_method!r}")
        if max_tasks_per_worker is not None and (isinstance(max_tasks_per_worker, bool) or not isinstance(max_tasks_per_worker, int) or max_tasks_per_worker < 1):
            raise ValueError(f"max_tasks_per_worker must be a positive int or None, not {max_tasks_per_worker!r}")
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable or None, not {initializer!r}")
        super().__init__(size)
        self.start_method = start_method
        self.max_tasks_per_worker = max_tasks_per_worker
        self._ctx: Any = multiprocessing.get_context(start_method)
        self._init_payload: bytes | None = None
        if initializer is not None:
            try:
                self._init_payload = _dumps_task((initializer, tuple(initargs)), initializer)
            except Exception as exc:
                parts = [("the initializer", initializer)] + [(f"initargs[{i}]", a) for i, a in enumerate(initargs)]
                raise which_part(_DESTINATION, parts, exc) from None
        self._pid = os.getpid()
        self._queue: deque[_Task] = deque()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._terminating = False
        self._armed = False  # the dispatcher is (about to be) blocked in poll: wake it on new work
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._shared_lock = threading.Lock()
        self._shared: shared.SharedState | None = None
        self._cleaned = False
        # dispatcher-thread state
        self._workers: dict[int, _Worker] = {}  # sentinel fd -> worker
        self._by_result_fd: dict[int, _Worker] = {}
        self._idle: list[_Worker] = []
        self._poller = select.poll()
        self._free_slots: list[int] = []
        self._slots = 2 * self.size + 2  # progress slots: live workers and the dying ones
        self._callbacks = CallbackRunner(f"unifex-process-callbacks-{id(self):x}")
        _LIVE.add(self)

    @classmethod
    def default_size(cls) -> int:
        return os.cpu_count() or 1

    def __repr__(self) -> str:
        state = ("running", "closed", "terminated")[self._state]
        return f"<unifex.executor kind='process' size={self.size} start_method={self.start_method!r} {state}>"

    # -- submitting ----------------------------------------------------------------

    def _default_chunksize(self, hint: int | None) -> int:
        if hint is None:
            return 1
        return max(1, math.ceil(hint / (4 * self.size)))

    def _dispatch(self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None) -> None:
        try:
            payload = _dumps_task((_CALL, fn, args, kwargs), fn)
        except Exception as exc:
            raise which_part(_DESTINATION, call_parts(fn, args, kwargs), exc) from None
        self._enqueue(_Task(fut, payload, fn, (args, kwargs), timeout))

    def _dispatch_batch(self, fut: Future[Any], fn: Callable[..., Any], batch: list[Any], flat: bool, start: int) -> None:
        bad: SerializationError | None = None
        try:
            payload = _dumps_chunk(fn, batch, flat)
        except Exception as exc:
            # an input that will not pickle fails at its position in the map,
            # after the items before it; a function that will not, at once
            found = unpicklable([("the function", fn)])
            if found is not None:
                raise which_part(_DESTINATION, [("the function", fn)], exc) from None
            found = unpicklable(map_parts(batch, start))
            if found is None:
                raise which_part(_DESTINATION, [], exc) from None
            index, label, value, error = found
            bad = which_part(_DESTINATION, [(label, value)], error)
            if index == 0:
                if fut.set_running_or_notify_cancel():
                    fut.try_set_result(([], bad))
                return
            batch = batch[:index]
            payload = _dumps_chunk(fn, batch, flat)
        task = _Task(fut, payload, fn, None, None, batch)
        task.flat = flat
        task.start = start
        task.crash_error = bad
        self._enqueue(task)

    def _enqueue(self, task: _Task) -> None:
        # submits from several threads at once: one starts the dispatcher thread
        with self._state_lock:
            self._enqueue_locked(task)

    def _enqueue_locked(self, task: _Task) -> None:
        self._queue.append(task)
        if self._thread is None:
            self._shared_state()  # the lock-owner table must exist before the first worker
            self._thread = threading.Thread(target=self._run, name=f"unifex-process-dispatcher-{id(self):x}", daemon=True)
            self._thread.start()
        elif self._armed:
            self._armed = False
            self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"\0")
        except OSError:  # the pipe is full (a wake-up is already pending) or closed
            pass

    # -- closing -------------------------------------------------------------------

    def _shutdown(self, wait: bool) -> None:
        with self._state_lock:
            self._closing = True
            thread = self._thread
        if thread is None:
            self._cleanup()
            return
        self._wake()
        if wait and thread is not threading.current_thread() and not self._callbacks.is_current():
            thread.join()

    def _terminate(self) -> None:
        with self._state_lock:
            self._terminating = True
            thread = self._thread
        if thread is None:
            self._cleanup()
            return
        self._wake()
        if thread is not threading.current_thread() and not self._callbacks.is_current():
            thread.join()

    def _cleanup(self) -> None:
        """Last step, once no worker is left: unlink the helpers' semaphores and
        shared memory, stop the dict server, close the wake pipe."""
        with self._shared_lock:
            if self._cleaned:
                return
            self._cleaned = True
            state, self._shared = self._shared, None
        if state is not None:
            state.close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        _LIVE.discard(self)

    # -- the dispatcher thread -----------------------------------------------------

    def _run(self) -> None:
        self._poller.register(self._wake_r, select.POLLIN)
        try:
            self._loop()
        except BaseException as exc:
            # never leave a caller waiting: fail everything, stop the workers,
            # and refuse new work (nobody would run it)
            logger.exception("unifex: the process executor's dispatcher failed; failing its tasks")
            with self._state_lock:
                self._state = TERMINATED
            self._kill_everything(exc)
        finally:
            self._callbacks.stop()
            self._cleanup()

    def _loop(self) -> None:
        queue = self._queue
        poll = self._poller.poll
        while True:
            if self._terminating:
                self._kill_everything(None)
                return
            if queue:
                self._assign()
            next_event = self._check_deadlines()
            if self._closing and not queue and not self._workers:
                return
            if self._closing and not queue:
                self._retire_idle()
            self._armed = True
            if (queue and self._idle) or self._terminating:
                self._armed = False
                continue
            timeout_ms = -1 if next_event is None else max(0, math.ceil((next_event - _monotonic()) * 1000))
            events = poll(timeout_ms)
            self._armed = False
            exits: list[_Worker] = []
            for fd, _ in events:
                if fd == self._wake_r:
                    try:
                        while os.read(self._wake_r, 512):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                    continue
                worker = self._by_result_fd.get(fd)
                if worker is not None:
                    self._on_reply(worker)
                    continue
                worker = self._workers.get(fd)
                if worker is not None:
                    exits.append(worker)
            for worker in exits:
                self._on_exit(worker)

    def _spawn(self) -> _Worker:
        state = self._shared_state()
        slot = self._free_slots.pop() if self._free_slots else -1
        task_r, task_w = multiprocessing.Pipe(duplex=False)
        result_r, result_w = multiprocessing.Pipe(duplex=False)
        _widen_pipe(task_w.fileno())
        _widen_pipe(result_r.fileno())
        death_r_fd, death_w_fd = _get_death_pipe()
        death = multiprocessing.connection.Connection(os.dup(death_r_fd), writable=False)
        close_fds = [task_w.fileno(), result_r.fileno(), death_w_fd] if self.start_method == "fork" else []
        proc = self._ctx.Process(
            target=_worker_main,
            args=(
                task_r,
                result_w,
                death,
                close_fds,
                os.getpid(),
                self.start_method != "forkserver",
                state.table,
                slot,
                slot + self._slots if slot >= 0 else -1,
                state.token,
                self._init_payload,
            ),
            name=f"unifex-process-worker-{self.start_method}",
        )
        try:
            proc.start()
        finally:
            task_r.close()
            result_w.close()
            death.close()
        worker = _Worker(proc, task_w, result_r, slot)
        self._workers[worker.sentinel] = worker
        assert worker.result_fd is not None
        self._by_result_fd[worker.result_fd] = worker
        self._poller.register(worker.sentinel, select.POLLIN)
        self._poller.register(worker.result_fd, select.POLLIN)
        return worker

    def _live_count(self) -> int:
        return sum(1 for w in self._workers.values() if not (w.dying or w.retiring))

    def _assign(self) -> None:
        queue = self._queue
        idle = self._idle
        while queue:
            if idle:
                worker = idle.pop()
            elif self._live_count() < self.size:
                try:
                    worker = self._spawn()
                except Exception as exc:
                    if self._live_count() == 0:
                        task = queue.popleft()
                        self._set_exception(task.fut, WorkerCrashedError(f"could not start a worker process for {task.describe()}: {describe_exception(exc)}"))
                        continue
                    logger.warning("unifex: could not start another worker process (%s); continuing with fewer", exc)
                    return
            else:
                return
            task = queue.popleft()
            if task.resumed:
                if task.fut.done():
                    idle.append(worker)
                    continue
            elif not task.fut.set_running_or_notify_cancel():
                idle.append(worker)
                continue
            if worker.slot >= 0:
                view = self._shared_state().view
                view[worker.slot] = -1
                if task.timeout is not None:
                    view[worker.slot + self._slots] = 0  # not started
            try:
                worker.tasks.send_bytes(task.payload)
            except OSError:
                # the worker died while idle: its sentinel will report it; run the task elsewhere
                task.resumed = True
                queue.appendleft(task)
                worker.retiring = True
                continue
            worker.task = task
            worker.sent += 1
            if task.timeout is not None:
                # the timeout counts from when the call starts: look then whether it has
                worker.handed = _monotonic()
                worker.deadline = worker.handed + task.timeout
            if self.max_tasks_per_worker is not None and worker.sent >= self.max_tasks_per_worker:
                worker.retiring = True

    def _retire_idle(self) -> None:
        """Closing and nothing left to run: ask every idle worker to exit."""
        for worker in self._idle:
            self._stop(worker)
        self._idle.clear()

    def _stop(self, worker: _Worker) -> None:
        worker.retiring = True
        self._release_slot(worker)
        try:
            worker.tasks.send_bytes(b"")
        except OSError:
            pass

    def _release_slot(self, worker: _Worker) -> None:
        if worker.slot >= 0:
            self._free_slots.append(worker.slot)
            worker.slot = -1

    def _on_reply(self, worker: _Worker) -> None:
        try:
            data = worker.results.recv_bytes()
        except (EOFError, OSError):
            # the worker is gone; its sentinel tells how
            if worker.result_fd is not None:
                self._poller.unregister(worker.result_fd)
                del self._by_result_fd[worker.result_fd]
                worker.result_fd = None
            return
        task = worker.task
        worker.task = None
        worker.deadline = None
        if worker.dying or task is None:
            return  # a late reply from a worker already given up on
        # Hand the worker its next task before unpickling this reply and settling
        # its future, so the worker computes while the parent does that. Only a
        # worker's first reply can say its initializer failed (it then exits).
        early = not worker.retiring and (self._init_payload is None or worker.sent > 1)
        if early:
            self._idle.append(worker)
            if self._queue:
                self._assign()
        try:
            reply = _loads(data)
        except BaseException as exc:  # SystemExit from a __reduce__ too: it fails this task only
            reply = exc
        if not early:
            if worker.retiring or (isinstance(reply, tuple) and reply[0] == _INIT_FAILED):
                self._stop(worker)  # a worker whose initializer failed exits after this reply
            else:
                self._idle.append(worker)
        self._settle(task, reply)

    def _settle(self, task: _Task, reply: Any) -> None:
        fut = task.fut
        if isinstance(reply, BaseException):
            exc = reply
            err = SerializationError(
                f"the reply of {task.describe()} could not be unpickled in the parent process ({describe_exception(exc)}); "
                "make its result and exception types importable and constructible from their args"
            )
            err.__cause__ = exc
            if task.chunk is not None:
                self._set_result(fut, ([], err))
            else:
                self._set_exception(fut, err)
            return
        code = reply[0]
        if code == _OK:
            self._set_result(fut, reply[1])
        elif code in (_RAISED, _INIT_FAILED):
            raised: BaseException = reply[1]
            raised.__cause__ = RemoteTraceback(reply[2])
            self._set_exception(fut, raised)
        elif code == _LOST:
            err = SerializationError(reply[1])
            if reply[2]:
                err.__cause__ = RemoteTraceback(reply[2])
            self._set_exception(fut, err)
        else:
            _, values, error, tb, lost = reply
            if error is not None and tb:
                error.__cause__ = RemoteTraceback(tb)
            if lost is not None:
                error = SerializationError(lost.replace("{item}", f"map input item {task.start + len(values)}"))
            if error is None and task.crash_error is not None:
                error = task.crash_error
            self._set_result(fut, (values, error))

    def _on_exit(self, worker: _Worker) -> None:
        # a reply sent just before the exit (a retiring worker, a task that
        # called os._exit after...) is still in the pipe: read it first
        while worker.result_fd is not None and worker.task is not None:
            try:
                if not worker.results.poll(0):
                    break
            except (EOFError, OSError):
                break
            self._on_reply(worker)
        worker.proc.join(5)
        if worker.proc.exitcode is None:  # the sentinel fired but the process lingers: make sure
            worker.proc.kill()
            worker.proc.join()
        exitcode = worker.proc.exitcode
        index = 0
        if worker.slot >= 0 and self._shared is not None:
            index = self._shared.view[worker.slot]  # the map item the worker was running
        self._forget(worker)
        if self._shared is not None:
            self._shared.release_owned_by(worker.pid)
        task = worker.task
        if task is not None and not task.fut.done() and index == -1 and task.requeued < 3:
            # the worker died (killed while idle, say) before it read the task: run it elsewhere
            task.requeued += 1
            task.resumed = True
            self._queue.appendleft(task)
        elif task is not None and not task.fut.done():
            how = _how_it_ended(worker.pid, exitcode)
            if task.chunk is None:
                self._set_exception(task.fut, WorkerCrashedError(f"{how} while running {task.describe()}; the executor replaced it", worker.pid, exitcode))
            else:
                self._chunk_crashed(task, worker, how, exitcode, index)

    def _chunk_crashed(self, task: _Task, worker: _Worker, how: str, exitcode: int | None, index: int) -> None:
        assert task.chunk is not None
        index = min(max(0, index), len(task.chunk) - 1)
        if index < task.exact_from:
            # only the block that was running is known: run the chunk again with
            # exact positions from that block on, to find the item that crashes
            logger.warning("unifex: %s during a map batch of %s; running the batch again to find the item", how, task.describe())
            locate = _Task(task.fut, _dumps_chunk(task.fn, task.chunk, task.flat, index), task.fn, None, None, task.chunk)
            locate.flat = task.flat
            locate.exact_from = index
            locate.resumed = True
            locate.crash_error = task.crash_error
            self._queue.appendleft(locate)
            return
        item = task._args(index) if task.chunk else ()
        error = WorkerCrashedError(f"{how} while running {describe_call(task.fn, item)}; the executor replaced it", worker.pid, exitcode)
        if index == 0:
            self._set_result(task.fut, ([], error))
            return
        # the results before the crashed item died with the worker: run them again
        head = task.chunk[:index]
        rerun = _Task(task.fut, _dumps_chunk(task.fn, head, task.flat), task.fn, None, None, head)
        rerun.flat = task.flat
        rerun.resumed = True
        rerun.crash_error = error
        self._queue.appendleft(rerun)

    def _forget(self, worker: _Worker) -> None:
        self._release_slot(worker)
        self._poller.unregister(worker.sentinel)
        self._workers.pop(worker.sentinel, None)
        if worker.result_fd is not None:
            self._poller.unregister(worker.result_fd)
            self._by_result_fd.pop(worker.result_fd, None)
            worker.result_fd = None
        if worker in self._idle:
            self._idle.remove(worker)
        worker.tasks.close()
        worker.results.close()
        worker.proc.close()

    def _check_deadlines(self) -> float | None:
        """Time out tasks, escalate kills; return when to look again."""
        now = _monotonic()
        soonest: float | None = None
        for worker in list(self._workers.values()):
            if worker.deadline is not None and worker.task is not None:
                if now >= worker.deadline:
                    worker.deadline = self._timeout_at(worker, worker.task, now)
                if worker.deadline is not None and now >= worker.deadline:
                    task = worker.task
                    worker.task = None
                    worker.deadline = None
                    self._set_exception(
                        task.fut,
                        TaskTimeoutError(
                            f"{task.describe()} ran past its timeout of {task.timeout} s; its worker (pid {worker.pid}) was killed and is replaced"
                        ),
                    )
                    self._kill(worker, now)
                elif worker.deadline is not None and (soonest is None or worker.deadline < soonest):
                    soonest = worker.deadline
            if worker.kill_at is not None:
                if now >= worker.kill_at:
                    self._signal(worker, signal.SIGKILL)
                    worker.kill_at = None
                elif soonest is None or worker.kill_at < soonest:
                    soonest = worker.kill_at
        return soonest

    def _timeout_at(self, worker: _Worker, task: _Task, now: float) -> float:
        """When ``task`` times out: its timeout after the worker began the call
        (the worker wrote when into the shared table); if it has not begun, look
        again shortly, up to ``_START_GRACE`` seconds past the timeout."""
        assert task.timeout is not None
        if worker.slot < 0 or self._shared is None:
            return worker.handed + task.timeout  # no table slot: count from the hand-off
        started_ns = self._shared.view[worker.slot + self._slots]
        if started_ns > 0:
            return started_ns / 1e9 + task.timeout
        give_up = worker.handed + task.timeout + _START_GRACE
        return give_up if now >= give_up else min(now + _START_POLL, give_up)

    def _kill(self, worker: _Worker, now: float) -> None:
        worker.dying = True
        worker.deadline = None
        self._release_slot(worker)
        if worker in self._idle:
            self._idle.remove(worker)
        self._signal(worker, signal.SIGTERM)
        worker.kill_at = now + KILL_GRACE

    @staticmethod
    def _signal(worker: _Worker, signum: int) -> None:
        try:
            os.kill(worker.pid, signum)
        except (ProcessLookupError, PermissionError):
            pass

    def _kill_everything(self, error: BaseException | None) -> None:
        """terminate(): cancel the queue, fail running tasks, kill and reap every worker."""
        dropped = list(self._queue)
        self._queue.clear()
        running = [w.task.fut for w in self._workers.values() if w.task is not None]
        for worker in self._workers.values():
            worker.task = None
            self._signal(worker, signal.SIGTERM)
        end = _monotonic() + KILL_GRACE
        for worker in list(self._workers.values()):
            worker.proc.join(max(0.0, end - _monotonic()))
            if worker.proc.exitcode is None:
                self._signal(worker, signal.SIGKILL)
                worker.proc.join()
            self._forget(worker)
            if self._shared is not None:  # helpers work until terminate() returns
                self._shared.release_owned_by(worker.pid)
        self._idle.clear()
        for fut in [t.fut for t in dropped] + running:
            held = hold(fut)
            if not fut.cancel():
                err = terminated_error()
                err.__cause__ = error
                fut.try_set_exception(err)
            self._callbacks.settled(fut, held)

    # -- settling futures: their callbacks run on the callback thread ----------------

    def _set_result(self, fut: Future[Any], value: Any) -> None:
        held = hold(fut)
        fut.try_set_result(value)
        self._callbacks.settled(fut, held)

    def _set_exception(self, fut: Future[Any], exc: BaseException) -> None:
        held = hold(fut)
        fut.try_set_exception(exc)
        self._callbacks.settled(fut, held)

    # -- helpers -------------------------------------------------------------------

    def _shared_state(self) -> shared.SharedState:
        with self._shared_lock:
            if self._shared is None:
                if self._cleaned:
                    raise self._closed_error()
                # per worker slot: the map item it runs; then, _slots on, when its call began
                self._shared = shared.SharedState(progress_slots=2 * self._slots)
                self._free_slots = list(range(self._slots))
            return self._shared

    def Lock(self) -> shared.Lock:
        return self._shared_state().Lock()

    def RLock(self) -> shared.RLock:
        return self._shared_state().RLock()

    def Event(self) -> shared.Event:
        return self._shared_state().Event()

    def Semaphore(self, value: int = 1) -> shared.Semaphore:
        return self._shared_state().Semaphore(value)

    def BoundedSemaphore(self, value: int = 1) -> shared.BoundedSemaphore:
        return self._shared_state().BoundedSemaphore(value)

    def Condition(self, lock: RLockLike | None = None) -> shared.Condition:
        return self._shared_state().Condition(lock)

    def Queue(self, maxsize: int = 0) -> shared.Queue:
        return self._shared_state().Queue(maxsize)

    def dict(self, *args: Any, **kwargs: Any) -> shared.SharedDict:
        return self._shared_state().dict(*args, **kwargs)
