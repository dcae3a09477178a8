"""The ``process`` kind, parent side: tasks run in worker processes the executor
owns, one task per worker at a time, so a crash, a timeout or ``terminate()``
is blamed on and confined to exactly one task. This module is the front
(submitting, pickling); ``dispatcher.py`` the dispatcher thread; ``worker.py``
the child; ``callbacks.py`` the thread that runs done-callbacks.

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
                                     future; its done-callbacks go       pipe        exception + traceback text
                                     to the callback thread
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
  gets its speed from batches instead: ``chunksize=None`` adapts (``_map``):
  1-item batches first, so the first result comes after about one task's
  time, then batches of about 0.2 s, at most ``ceil(n / (4 * size))`` items
  when the input has a length (``multiprocessing.Pool.map``'s choice) and
  ``_ITER_CAP`` for iterators. Tasks of one ``map`` that wait for each other
  need ``chunksize=1``.
* Large buffers in arguments and results (numpy arrays, ...) travel through
  shared memory, not the pipe (``shm``; the ``zero_copy_threshold`` option).
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
  Any value whose pickle refers to ``__main__`` goes by value too, so programs
  read from stdin work under every start method.
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
  ``KILL_GRACE`` seconds; killed workers are always joined (no zombies). A
  timeout counts from when the worker begins the call (it writes the time into
  shared memory), not from the hand-off to a worker that is still starting.
* Callbacks never run on the dispatcher thread: one that blocks (even on
  another future of this executor) must not stall it.
* The dispatcher thread holds the :class:`_Dispatcher`, never the executor: an
  executor dropped without ``close()`` is collected, and a finalizer closes it
  (its workers end, its helpers are unlinked).
* An unpicklable ``map`` input fails at its position in the whole map, after
  the results before it, like a task error; an unpicklable function at once.
* Parent death: each worker has a watcher thread blocked reading a process-wide
  "death pipe" whose write end only the parent holds; the parent's exit closes
  it and the worker exits at once. Under ``fork`` and ``spawn`` the workers also
  ask Linux for SIGKILL when their parent dies (``PR_SET_PDEATHSIG``).
* Workers ignore SIGINT: Ctrl-C reaches the caller only, which then
  terminates the executor (``__exit__``), and workers print no tracebacks.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import sys
import weakref
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, final

from ..._base import COMMON_OPTIONS, BaseExecutor
from ..._errors import SerializationError
from ..._future import Future
from ..._protocols import RLockLike
from ..._remote import call_parts, map_parts, unpicklable, which_part
from ..._share import Shared
from ..._worker import WORKER_OPTIONS, WorkerSetup, parse_bytes
from . import helpers as shared
from . import shm
from .dispatcher import KILL_GRACE, _Dispatcher, _Task
from .wire import _CALL, _CLOUDPICKLER, _PICKLERS, _dumps_chunk, _dumps_task

__all__ = ["KILL_GRACE", "ProcessExecutor"]

_DESTINATION = "a worker process"
#: the largest adaptive ``map`` batch over an iterator of unknown length
_ITER_CAP = 32
T = TypeVar("T")


def _refuse_gevent_patching() -> None:
    """After ``gevent.monkey.patch_all()`` the dispatcher thread would be a
    greenlet that runs only when the hub does, and its poll, pipes and child
    reaping gevent's: tasks would never finish. Say so at once instead."""
    monkey = sys.modules.get("gevent.monkey")
    if monkey is None:
        return
    patched = [name for name in ("threading", "select", "socket", "os", "signal", "subprocess") if monkey.is_module_patched(name)]
    if patched:
        raise RuntimeError(
            f"the 'process' kind cannot run in a program that gevent.monkey patched ({', '.join(patched)} patched): "
            "its dispatcher thread and its waits on workers would be gevent's, and tasks would never finish. "
            "For I/O-bound work in a patched program use unifex.executor('gevent'); run CPU-bound work with "
            "'process' in a program that does not call gevent.monkey.patch_all()"
        )


@final
class ProcessExecutor(BaseExecutor):
    """Tasks in worker processes: crash-isolated, killable, with cross-process helpers."""

    kind: ClassVar[str] = "process"
    map_iter_batch: ClassVar[int | None] = _ITER_CAP
    options: ClassVar[frozenset[str]] = (
        frozenset({"start_method", "max_tasks_per_worker", "initializer", "initargs", "max_memory_per_worker", "zero_copy_threshold"}) | WORKER_OPTIONS | COMMON_OPTIONS
    )
    capabilities: ClassVar[frozenset[str]] = frozenset({"concurrent", "processes", "kill_running", "isolated_crash"})

    def __init__(
        self,
        size: int | None = None,
        *,
        start_method: str | None = None,
        max_tasks_per_worker: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        finalizer: Callable[[], object] | None = None,
        max_memory_per_worker: int | str | None = None,
        zero_copy_threshold: int | None = shm.DEFAULT_THRESHOLD,
        **common: Any,
    ) -> None:
        _refuse_gevent_patching()
        methods = multiprocessing.get_all_start_methods()
        if start_method is None:
            start_method = "forkserver" if "forkserver" in methods else "spawn"
        elif start_method not in methods:
            raise ValueError(f"start_method must be one of {', '.join(repr(m) for m in methods)} on this platform, not {start_method!r}")
        if max_tasks_per_worker is not None and (isinstance(max_tasks_per_worker, bool) or not isinstance(max_tasks_per_worker, int) or max_tasks_per_worker < 1):
            raise ValueError(f"max_tasks_per_worker must be a positive int or None, not {max_tasks_per_worker!r}")
        WorkerSetup(initializer, initargs, finalizer, max_tasks_per_worker)  # the checks every kind makes
        if zero_copy_threshold is not None and (isinstance(zero_copy_threshold, bool) or not isinstance(zero_copy_threshold, int) or zero_copy_threshold < 1):
            raise ValueError(f"zero_copy_threshold must be a positive number of bytes or None (never use shared memory), not {zero_copy_threshold!r}")
        self.max_memory_per_worker = parse_bytes(max_memory_per_worker)
        super().__init__(size, **common)
        self.start_method = start_method
        self.max_tasks_per_worker = max_tasks_per_worker
        init_payload: bytes | None = None
        if initializer is not None:
            try:
                init_payload = _dumps_task((initializer, tuple(initargs)), initializer)
            except Exception as exc:
                parts = [("the initializer", initializer)] + [(f"initargs[{i}]", a) for i, a in enumerate(initargs)]
                raise which_part(_DESTINATION, parts, exc) from None
        # the finalizer, and the level from which workers forward logging records
        try:
            life_payload = _dumps_task((finalizer, logging.getLogger().getEffectiveLevel()), finalizer)
        except Exception as exc:
            raise which_part(_DESTINATION, [("the finalizer", finalizer)], exc) from None
        self._core = _Dispatcher(self.size, start_method, max_tasks_per_worker, init_payload, self._state_lock, weakref.ref(self))
        self._core._life_payload = life_payload
        self._core.max_memory_per_worker = self.max_memory_per_worker
        #: buffers of at least this many bytes travel through shared memory (``shm``)
        self.zero_copy_threshold = zero_copy_threshold
        self._core.zero_copy_threshold = zero_copy_threshold
        # dropped without close(): finish the accepted work, then end the workers
        # and release the helpers, as ThreadPoolExecutor's threads end (the
        # dispatcher thread holds the core, never this object)
        weakref.finalize(self, self._core.shutdown, False)

    @classmethod
    def default_size(cls) -> int:
        return os.cpu_count() or 1

    def __repr__(self) -> str:
        state = ("running", "closed", "terminated")[self._state]
        return f"<unifex.executor kind='process' size={self.size} start_method={self.start_method!r} {state}>"

    # -- submitting ----------------------------------------------------------------

    def _dispatch(self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None, reuse: shm.Segments | None = None) -> None:
        core = self._core
        try:
            sent_args, sent_kwargs = shm.wrap_args(args, kwargs, core.zero_copy_threshold)
            payload = _dumps_task((_CALL, fn, sent_args, sent_kwargs), fn, core.zero_copy_threshold, core.shm_prefix, core.reuse if reuse is None else reuse)
        except Exception as exc:
            raise which_part(_DESTINATION, call_parts(fn, args, kwargs), exc) from None
        if payload[:1] == shm.MARK[:1]:
            self._own_segments(fut, payload)
        self._core._enqueue(_Task(fut, payload, fn, (args, kwargs), timeout))

    def _dispatch_item(self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], per_call: dict[str, Any]) -> None:
        self._dispatch(fut, fn, args, {}, None, self._capture(per_call))

    def _capture(self, per_call: dict[str, Any] | None) -> shm.Segments:
        """Where a task's large buffers get their segments: within one ``map``
        call, each buffer is captured (compared with its segment) once."""
        if per_call is None:
            return self._core.reuse
        capture: shm.Capture | None = per_call.get("segments")
        if capture is None:
            capture = per_call["segments"] = shm.Capture(self._core.reuse)
        return capture

    def _dispatch_batch(self, fut: Future[Any], fn: Callable[..., Any], batch: list[Any], flat: bool, start: int, per_call: dict[str, Any] | None = None) -> None:
        bad: SerializationError | None = None
        core = self._core
        reuse = self._capture(per_call)
        try:
            payload = _dumps_chunk(fn, batch, flat, None, core.zero_copy_threshold, core.shm_prefix, reuse)
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
            payload = _dumps_chunk(fn, batch, flat, None, core.zero_copy_threshold, core.shm_prefix, reuse)
        if payload[:1] == shm.MARK[:1]:
            self._own_segments(fut, payload)
        task = _Task(fut, payload, fn, None, None, batch)
        task.flat = flat
        task.start = start
        task.crash_error = bad
        self._core._enqueue(task)

    def _own_segments(self, fut: Future[Any], payload: bytes) -> None:
        """The task's arguments are in segments: let them go when the task ends,
        however it ends (result, error, crash, timeout, cancel, terminate)."""
        names = shm.envelope_names(payload)
        reuse = self._core.reuse
        fut.add_done_callback(lambda _: reuse.release(names))

    def _share(self, obj: T) -> Shared[T]:
        core = self._core
        main = getattr(type(obj), "__module__", None) == "__main__"
        handle = shm.share(obj, _CLOUDPICKLER if main else _PICKLERS, core.shm_prefix + "s")
        with core._shared_lock:
            if not core._cleaned:
                core.handles.append(handle)
                return handle
        handle._release()
        raise self._closed_error()

    # -- closing -------------------------------------------------------------------

    def _shutdown(self, wait: bool) -> None:
        self._core.shutdown(wait)

    def _cancel_queued(self) -> None:
        for task in list(self._core._queue):  # the dispatcher skips a cancelled task
            task.fut.cancel()

    def _terminate(self) -> None:
        self._core.terminate()

    def _stop_running(self, fut: Future[Any]) -> None:
        """asyncio cancelled the awaiter of a running task: kill its worker."""
        self._core.stop_running(fut)

    # -- helpers -------------------------------------------------------------------

    def Lock(self) -> shared.Lock:
        return self._core._shared_state().Lock()

    def RLock(self) -> shared.RLock:
        return self._core._shared_state().RLock()

    def Event(self) -> shared.Event:
        return self._core._shared_state().Event()

    def Semaphore(self, value: int = 1) -> shared.Semaphore:
        return self._core._shared_state().Semaphore(value)

    def BoundedSemaphore(self, value: int = 1) -> shared.BoundedSemaphore:
        return self._core._shared_state().BoundedSemaphore(value)

    def Condition(self, lock: RLockLike | None = None) -> shared.Condition:
        return self._core._shared_state().Condition(lock)

    def Queue(self, maxsize: int = 0) -> shared.Queue:
        return self._core._shared_state().Queue(maxsize)

    def dict(self, *args: Any, **kwargs: Any) -> shared.SharedDict:
        return self._core._shared_state().dict(*args, **kwargs)
