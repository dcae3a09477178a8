"""The parent side's engine of the ``process`` kind: the dispatcher thread that
hands tasks to workers, reads their replies, notices crashes and deadlines,
and starts, kills and reaps the worker processes (the data flow is drawn in
``executor.py``). Everything here runs in the parent; the state of one
executor lives in a :class:`_Dispatcher`, which its thread owns.
"""

from __future__ import annotations

import contextlib
import logging
import math
import multiprocessing
import multiprocessing.connection
import os
import secrets
import select
import signal
import sys
import threading
import time
import weakref
from collections import deque
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from ..._base import TERMINATED, describe_call, stopped_error, terminated_error
from ..._callbacks import CallbackRunner, hold
from ..._errors import ExecutorClosedError, SerializationError, TaskTimeoutError, WorkerCrashedError
from ..._future import Future
from ..._remote import RemoteTraceback, describe_exception, exit_text
from ..._worker import emit_forwarded, format_bytes, rss_of
from . import helpers as shared
from . import shm
from .wire import (
    _INIT_FAILED,
    _LOST,
    _OK,
    _RAISED,
    _dumps_chunk,
    _loads,
    _widen_pipe,
)
from .worker import LOG_MARK, _worker_main

if TYPE_CHECKING:
    from .executor import ProcessExecutor

__all__ = ["KILL_GRACE"]

_LOG_BYTE = LOG_MARK[0]

logger = logging.getLogger("unifex")

#: seconds between SIGTERM and SIGKILL when a worker is stopped
KILL_GRACE = 0.25

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
    """After ``os.fork()`` (or a ``fork`` worker's start), this process is not
    the parent of the executors' workers nor of the forkserver: forget them,
    so it can start executors of its own and exits without joining theirs."""
    global _death_pipe
    if _death_pipe is not None:
        try:
            os.close(_death_pipe[1])  # only the parent may hold the write end: its exit must close it
        except OSError:
            pass
    _death_pipe = None
    children = multiprocessing.process._children  # type: ignore[attr-defined]
    for core in list(_LIVE):
        for worker in core._workers.values():
            children.discard(worker.proc)
    _LIVE.clear()
    _forget_forkserver()


def _forget_forkserver() -> None:
    forkserver = getattr(sys.modules.get("multiprocessing.forkserver"), "_forkserver", None)
    if forkserver is None or getattr(forkserver, "_forkserver_pid", None) is None:
        return
    # the parent's forkserver: waitpid() on it fails here (ChildProcessError); start our own when needed
    alive_fd = forkserver._forkserver_alive_fd
    forkserver._forkserver_pid = None
    forkserver._forkserver_address = None
    forkserver._forkserver_alive_fd = None
    forkserver._lock = threading.Lock()  # another thread may have held it at the fork
    if alive_fd is not None:
        try:
            os.close(alive_fd)
        except OSError:
            pass


_LIVE: weakref.WeakSet[_Dispatcher] = weakref.WeakSet()


def _close_at_exit() -> None:
    """Like concurrent.futures: at interpreter exit, finish what was accepted."""
    for core in list(_LIVE):
        if core._pid == os.getpid():
            try:
                core.shutdown(wait=True)
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


@contextlib.contextmanager
def _main_path_hidden() -> Iterator[None]:
    """A program read from stdin (``python3 - <<EOF``) has ``__main__.__file__ ==
    '<stdin>'``: spawn and forkserver would run that path in the worker and
    fail. Hide a path that is not a file while a worker starts; functions of
    ``__main__`` travel by value anyway."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    spec = getattr(main, "__spec__", None)
    if not isinstance(path, str) or spec is not None or os.path.isfile(os.path.join(multiprocessing.process.ORIGINAL_DIR or "", path)):  # type: ignore[attr-defined]
        yield
        return
    del main.__file__  # type: ignore[union-attr]
    try:
        yield
    finally:
        main.__file__ = path  # type: ignore[union-attr]


def _how_it_ended(pid: int, exitcode: int | None) -> str:
    return f"worker pid {pid} {exit_text(exitcode)}"


def _preload_in_fork_server() -> None:
    """Have the fork server import the worker's modules once, so that each
    worker it forks starts with unifex loaded instead of importing it (about
    0.2 s less per worker start). Adds to the program's own preload list,
    never replaces it, and acts only if the server has not started yet."""
    from multiprocessing import forkserver

    current = list(getattr(getattr(forkserver, "_forkserver", None), "_preload_modules", None) or ["__main__"])
    if _worker_main.__module__ not in current:
        forkserver.set_forkserver_preload([*current, _worker_main.__module__])


class _Dispatcher:
    """The executor's machinery, owned by its dispatcher thread: the queue, the
    workers, the helpers' shared state. Kept apart from :class:`ProcessExecutor`
    so that the thread does not keep a dropped executor alive."""

    def __init__(
        self,
        size: int,
        start_method: str,
        max_tasks_per_worker: int | None,
        init_payload: bytes | None,
        state_lock: Any,
        owner: weakref.ref[ProcessExecutor],
    ) -> None:
        self.size = size
        self.start_method = start_method
        self.max_tasks_per_worker = max_tasks_per_worker
        self._ctx: Any = multiprocessing.get_context(start_method)
        if start_method == "forkserver":
            _preload_in_fork_server()
        self._init_payload = init_payload
        self._life_payload: bytes | None = None  # the finalizer and the log level workers forward from
        self.max_memory_per_worker: int | None = None
        self._state_lock = state_lock  # the executor's: no work is queued once closing has begun
        self._owner = owner
        self._pid = os.getpid()
        self._queue: deque[_Task] = deque()
        self._thread: threading.Thread | None = None
        self._closing = False
        self._terminating = False
        self._armed = False  # the dispatcher is (about to be) blocked in poll: wake it on new work
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._wake_lock = threading.Lock()
        self._shared_lock = threading.Lock()
        self._shared: shared.SharedState | None = None
        self._cleaned = False
        # shared memory for large data (``shm``): arguments' segments, counted by
        # ``reuse`` and let go as their tasks end (or kept for the next submit of
        # the same buffer while it lives, up to a budget); ``share()`` handles, released
        # on close/terminate; results' segments are the workers' until read
        self.zero_copy_threshold: int | None = shm.DEFAULT_THRESHOLD
        self.shm_prefix = f"/uxd{self._pid}-{secrets.token_hex(4)}-"
        self.reuse = shm.Reuse()
        self.handles: list[shm.SharedSegment[Any]] = []
        # dispatcher-thread state
        self._workers: dict[int, _Worker] = {}  # sentinel fd -> worker
        self._by_result_fd: dict[int, _Worker] = {}
        self._idle: list[_Worker] = []
        self._poller = select.poll()
        self._free_slots: list[int] = []
        self._slots = 2 * size + 2  # progress slots: live workers and the dying ones
        self._callbacks = CallbackRunner(f"unifex-process-callbacks-{id(self):x}")
        self._stop_requests: deque[Future[Any]] = deque()  # running tasks to stop (asyncio cancelled their awaiter)
        _LIVE.add(self)

    def _closed_error(self) -> ExecutorClosedError:
        return ExecutorClosedError("this 'process' executor is closed; no new work is accepted. Create a new executor with unifex.executor('process')")

    def _enqueue(self, task: _Task) -> None:
        # called outside the executor's state lock (the task was pickled there),
        # from several threads at once: take it to queue, so one starts the thread
        with self._state_lock:
            self._queue.append(task)
            if self._thread is None:
                self._shared_state()  # the lock-owner table must exist before the first worker
                shm.sweep_dead()  # what a unifex process killed with SIGKILL left in /dev/shm
                self._thread = threading.Thread(target=self._run, name=f"unifex-process-dispatcher-{id(self):x}", daemon=True)
                self._thread.start()
            elif self._armed:
                self._armed = False
                self._wake()

    def _wake(self) -> None:
        # under the lock: once closed, the pipe's fd number may belong to another file
        with self._wake_lock:
            if self._wake_w < 0:
                return
            try:
                os.write(self._wake_w, b"\0")
            except OSError:  # the pipe is full: a wake-up is already pending
                pass

    # -- closing -------------------------------------------------------------------

    def shutdown(self, wait: bool) -> None:
        with self._state_lock:
            self._closing = True
            thread = self._thread
        if thread is None:
            self._cleanup()
            return
        self._wake()
        if wait and thread is not threading.current_thread() and not self._callbacks.is_current():
            thread.join()

    def terminate(self) -> None:
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
        with self._shared_lock:
            handles, self.handles = self.handles, []
        for handle in handles:
            handle._release()
        self.reuse.close()  # the arguments' segments kept for reuse
        shm.sweep(self.shm_prefix)  # task arguments go as their tasks end; make sure
        with self._wake_lock:
            for fd in (self._wake_r, self._wake_w):
                try:
                    os.close(fd)
                except OSError:
                    pass
            self._wake_r = self._wake_w = -1
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
            owner = self._owner()
            if owner is not None:
                with self._state_lock:
                    owner._state = TERMINATED
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
        death_r_fd = _get_death_pipe()[0]
        death = multiprocessing.connection.Connection(os.dup(death_r_fd), writable=False)
        # fork: the worker closes the parent's ends of its pipes (the at-fork hook closes the death pipe's)
        close_fds = [task_w.fileno(), result_r.fileno()] if self.start_method == "fork" else []
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
                self._life_payload,
                self.zero_copy_threshold,
                self.max_memory_per_worker is None,  # else the kept mappings would count in its memory
            ),
            name=f"unifex-process-worker-{self.start_method}",
        )
        try:
            with _main_path_hidden():
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
        if data[0] == _LOG_BYTE:  # a logging record of the worker (docs/lifecycle.md)
            try:
                emit_forwarded(_loads(data[1:]))
            except Exception:
                logger.exception("unifex: a logging record from process worker pid %d could not be handled", worker.pid)
            return
        task = worker.task
        worker.task = None
        worker.deadline = None
        if worker.dying or task is None:
            return  # a late reply from a worker already given up on
        if self.max_memory_per_worker is not None and not worker.retiring:
            self._check_memory(worker)
        # Hand the worker its next task before unpickling this reply and settling
        # its future, so the worker computes while the parent does that. Only a
        # worker's first reply can say its initializer failed (it then exits).
        early = not worker.retiring and (self._init_payload is None or worker.sent > 1)
        if early:
            self._idle.append(worker)
            if self._queue:
                self._assign()
        try:
            reply = shm.load(data, True)  # a worker's segments: ours to unlink once mapped
        except BaseException as exc:  # SystemExit from a __reduce__ too: it fails this task only
            reply = exc
        if not early:
            if worker.retiring or (isinstance(reply, tuple) and reply[0] == _INIT_FAILED):
                self._stop(worker)  # a worker whose initializer failed exits after this reply
            else:
                self._idle.append(worker)
        self._settle(task, reply)

    def _check_memory(self, worker: _Worker) -> None:
        """``max_memory_per_worker``: a worker grown past it is replaced after the
        task it just finished (retired from this side, so no task is handed to a
        worker that is exiting)."""
        rss = rss_of(worker.pid)
        limit = self.max_memory_per_worker
        if rss is not None and limit is not None and rss > limit:
            worker.retiring = True
            logger.warning(
                "unifex: process worker pid %d uses %s, more than max_memory_per_worker=%s; it is replaced",
                worker.pid,
                format_bytes(rss),
                format_bytes(limit),
            )

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
        # results the dead worker put in shared memory that were never read
        # (a reply cut off by a crash, a timeout kill, terminate())
        shm.sweep(f"/uxd{self._pid}-w{worker.pid}-")

    def stop_running(self, fut: Future[Any]) -> None:
        """Stop the task of ``fut`` if a worker runs it: its worker is killed
        and replaced, the future fails with ``CancelledError``. Any thread."""
        self._stop_requests.append(fut)
        self._wake()

    def _check_deadlines(self) -> float | None:
        """Time out tasks, stop the ones asked to, escalate kills; return when to look again."""
        now = _monotonic()
        soonest: float | None = None
        while self._stop_requests:
            fut = self._stop_requests.popleft()
            for worker in list(self._workers.values()):
                task = worker.task
                if task is not None and task.fut is fut and not fut.done():
                    worker.task = None
                    worker.deadline = None
                    self._set_exception(fut, stopped_error())
                    self._kill(worker, now)
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

    def _shared_state(self) -> shared.SharedState:
        with self._shared_lock:
            if self._shared is None:
                if self._cleaned:
                    raise self._closed_error()
                # per worker slot: the map item it runs; then, _slots on, when its call began
                self._shared = shared.SharedState(progress_slots=2 * self._slots)
                self._free_slots = list(range(self._slots))
            return self._shared
