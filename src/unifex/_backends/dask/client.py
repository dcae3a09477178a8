"""The ``dask`` kind, client side: the executor that hands tasks to a dask.distributed
cluster, embedded or joined, and settles their futures in the submitting process.

Three ways to start, chosen by the options::

    unifex.executor("dask")                           # an embedded LocalCluster of `size` worker processes
    unifex.executor("dask", address="tcp://h:8786")   # join a running scheduler; never shut it down
    unifex.executor("dask", client=my_client)         # reuse a distributed.Client; never close it

Data flow::

    caller --submit--> _pending (local FIFO) --pump: at most `size` in flight--> client.submit(run_remote, payload, *big)
                                                                                      |  scheduler -> worker
    unifex.Future <--settle-- collector thread <--(dask future, bytes)-- distributed.as_completed
          |
          +--done-callbacks--> callback thread (one per executor, in completion order)

* The function and its arguments are pickled here, before submission, so a
  value that cannot travel fails that task's future with ``SerializationError``
  naming the part; the worker pickles ``(ok, value, traceback)`` itself, so an
  unpicklable result is reported the same way and an exception comes back with
  its remote traceback as ``__cause__``. Functions from modules a cluster
  cannot import (a script, a test module: anything outside site-packages and
  the stdlib, unifex excepted) travel by value through cloudpickle.
* At most ``size`` dask tasks are in flight; the rest wait here, so a joined
  cluster with more threads still runs at most ``size`` tasks of this executor,
  and ``terminate()`` cancels queued work without a scheduler round trip.
* One collector thread of our own receives finished futures with their results
  (``distributed.as_completed(with_results=True)`` gathers concurrently in the
  client's event loop) and settles the unifex futures. Done-callbacks run on a
  callback thread of the executor, never on the collector nor on distributed's
  single callback thread: a callback may wait on another future of the same
  executor, which the collector settles meanwhile.
* Arguments whose pickle exceeds ``zero_copy_threshold`` (default 1 MiB) are
  scattered to the cluster and passed as dask dependencies (``*big``), not
  embedded in the task graph; ``share(obj)`` scatters once to every worker.
* A value whose pickle is at least ``zero_copy_threshold`` stays on its worker
  (a ``HeldOutcome``: its buffers out of band); the collector, told by the type
  the scheduler reports, does not gather it and settles the future with a
  ``_Held`` placeholder. Every plain future is a ``_HeldFuture`` from dispatch
  on (a thread already waiting must not see the placeholder): its first
  ``result()`` fetches the value and releases the key; dropping the future
  releases it too; closing fetches what live futures still hold there. A
  future whose value is read as soon as it ends (retries, ``apply_async``
  callbacks, an asyncio awaiter) is gathered at once instead.
* asyncio cancelled the awaiter of a running task (``_stop_running``): the
  future fails with "stopped" and dask forgets the task; on the embedded
  cluster the scheduler lets its worker go as if leaving (the worker's other
  tasks run again elsewhere) and the nanny kills and restarts the process.
* ``map`` batches: ``chunksize=None`` adapts (``unifex._map``): one input per
  dask task first, then batches of about 0.2 s, at most ``ceil(n / (4 * size))``
  inputs (and 10,000) when the input length is known, else ``ITER_CAP``, so
  100,000 tiny tasks become a few dozen scheduler tasks. A batch stops at its
  first exception, of any type, and ``map`` raises it at its position.
* A worker that dies during a ``map`` batch: the batch runs again recording
  each item's index on the scheduler before it runs; a crash that recurs is
  raised at its item's position, after the results of the items before it
  (which run once more: their results died with the worker).
* Per-task ``timeout``: the future fails with ``TaskTimeoutError`` at the
  deadline (counted from when the task is handed to dask); the function runs on,
  but its worker thread carries the deadline, so its next ``unifex.sleep`` or
  helper wait raises ``TaskTimeoutError`` inside it.
* ``terminate()``: local queue cancelled, dask futures cancelled and their
  unifex futures failed with ``TerminatedError``; with the embedded cluster its
  worker processes are closed (killed after 0.5 s), which stops running tasks.
  A joined cluster is left running; its running tasks end at their next unifex
  wait (they see the cancellation) or when they return.
* A worker that dies mid-task: the scheduler reports ``KilledWorker`` once its
  retries are used up (the embedded cluster sets ``allowed-failures`` to 0 and
  ``worker-saturation`` to 1.0 so a crash fails only the task it ran, at once);
  the future fails with ``WorkerCrashedError`` carrying the worker's pid and,
  where its nanny is ours (embedded cluster), the exit code or signal.
* At normal interpreter exit the core closes live executors (``_exit.py``)
  before distributed's own thread pools stop, so accepted tasks run to completion.

Helpers (``Lock``, ``RLock``, ``Semaphore``, ``BoundedSemaphore``, ``Event``,
``Condition``, ``Queue``, ``dict``) live on the scheduler in one extension
(``scheduler.py``; the handles are in ``helpers.py``), the way distributed's own ``Lock``/``Event``/``Queue``
extensions do, registered by a scheduler plugin on first use. Each operation is
one round trip and atomic (the scheduler's event loop runs it alone). We do not
hand out distributed's client classes because their semantics differ from the
stdlib's where the SPEC needs them: ``Lock``/``Semaphore`` are leases that lapse
after a timeout (two holders), may only be released by the copy that acquired
and cannot grow past their initial value; ``Queue`` has no ``task_done``/``join``
and logs an ERROR per timed-out get; ``Variable`` turns lists into tuples. Ours
keep stdlib semantics and carry values pickled. The scheduler (and workers) must
be able to import ``unifex``. Locks and semaphore units held by tasks of a
worker that leaves the cluster (it died) are given back, so the other tasks go
on. When the executor closes, its helpers are dropped from the scheduler; after
that ``set``/``clear``/``release``/``notify`` are accepted and ignored (cleanup
code in ``finally`` stays harmless) and every other call raises
``ExecutorClosedError``.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterator
from typing import Any, ClassVar, TypeVar, final

import dask
import distributed as _distributed

from ..._base import COMMON_OPTIONS, TERMINATED, BaseExecutor, describe_call, fail_unfinished, stopped_error, terminated_error
from ..._callbacks import CallbackRunner
from ..._errors import SerializationError, TaskTimeoutError, WorkerCrashedError
from ..._future import Future
from ..._helpers import queue_maxsize, semaphore_value
from ..._protocols import RLockLike
from ..._remote import RemoteTraceback, exit_text
from ..._share import Shared
from ..._worker import WORKER_OPTIONS, WorkerSetup, emit_forwarded, parse_bytes
from . import cluster
from .helpers import (
    DaskBoundedSemaphore,
    DaskCondition,
    DaskDict,
    DaskEvent,
    DaskLock,
    DaskQueue,
    DaskRLock,
    DaskSemaphore,
    call,
    clients,
    gone,
)
from .payload import _Batch, _dumps_value, _origin, _serialize_task
from .results import _HELD, _can_hold, _Completed, _Held, _HeldFuture
from .scheduler import PLUGIN_NAME, HelperPlugin
from .worker import WHERE, DaskShared, HeldOutcome, Ref, dpickle, end_lives, run_batch, run_remote

__all__ = ["DaskExecutor"]

#: distributed is only partly annotated; its API is used here as dynamic
distributed: Any = _distributed
Client: Any = _distributed.Client

logger = logging.getLogger("unifex")

#: largest batch ``map`` makes by itself
MAX_CHUNKSIZE = 10_000
#: largest adaptive batch over an iterator of unknown length (a dask task costs
#: milliseconds of scheduling: one per input would make 3,000 tiny inputs take 30 s)
ITER_CAP = 256
#: arguments whose pickle is larger (bytes) are scattered, not put in the task graph;
#: results that large stay on the cluster until ``result()``
ZERO_COPY_THRESHOLD = 1 << 20
#: how long closing waits for each value still on the cluster
FETCH_AT_CLOSE_TIMEOUT = 60.0
#: how long closing waits for a worker being stopped (``_stop_running``) to come back
STOP_TIMEOUT = 30.0

T = TypeVar("T")

_monotonic = time.monotonic


#: modules whose done-callbacks never block (map's bookkeeping, wait/as_completed
#: queues): they run at once, in the thread that settles the future
_INLINE_MODULES = frozenset({"unifex._map", "unifex._future"})


def _inline(callback: Any) -> bool:
    return (getattr(callback, "__module__", None) or type(callback).__module__) in _INLINE_MODULES


class _Deferred(list):  # type: ignore[type-arg]
    """A future's callback list whose callbacks run on the executor's callback
    thread, not on the collector: a callback that waits on another future of
    the same executor cannot stop the collector from settling it."""

    __slots__ = ("_post",)

    def __init__(self, post: Callable[[Future[Any], list[Any]], None], callbacks: Any) -> None:
        super().__init__(callbacks or ())
        self._post = post

    def __iter__(self) -> Iterator[Any]:
        # Future._finish iterates the list once, when the future settles
        if not list.__len__(self):
            return iter(())
        callbacks = list(list.__iter__(self))
        inline = [cb for cb in callbacks if _inline(cb)]
        rest = [cb for cb in callbacks if not _inline(cb)]
        post = self._post
        if rest:
            inline.append(lambda fut: post(fut, rest))
        return iter(inline)


#: a task waiting for a slot: future, function, arguments, timeout, its map batch,
#: and the pickled call with the scattered arguments it refers to (both made
#: at submit, outside the state lock)
_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any], "float | None", "_Batch | None", "tuple[bytes, list[Any]]"]


def _release_dropped(client: Any, cluster: Any, callbacks: CallbackRunner) -> None:
    """An executor dropped without ``close()`` was collected: end its callback
    thread and close what it made (a client of its own, an embedded cluster)."""
    callbacks.stop()
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()
    if cluster is not None:
        with contextlib.suppress(Exception):
            cluster.close()


@final
class DaskExecutor(BaseExecutor):
    """Tasks on a dask.distributed cluster: embedded, joined by ``address`` or
    through a user's ``client``."""

    kind: ClassVar[str] = "dask"
    map_iter_batch: ClassVar[int | None] = ITER_CAP
    map_max_batch: ClassVar[int] = MAX_CHUNKSIZE
    options: ClassVar[frozenset[str]] = (
        frozenset({"address", "client", "processes", "threads_per_worker", "zero_copy_threshold", "max_memory_per_worker"})
        | WORKER_OPTIONS
        | COMMON_OPTIONS
    )
    capabilities: ClassVar[frozenset[str]] = frozenset({"concurrent", "processes", "remote", "isolated_crash"})

    @classmethod
    def default_size(cls) -> int:
        return os.cpu_count() or 1

    def __init__(
        self,
        size: int | None = None,
        *,
        address: str | None = None,
        client: Any = None,
        processes: bool | None = None,
        threads_per_worker: int | None = None,
        zero_copy_threshold: int | None = ZERO_COPY_THRESHOLD,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        finalizer: Callable[[], object] | None = None,
        max_tasks_per_worker: int | None = None,
        max_memory_per_worker: int | str | None = None,
        **common: Any,
    ) -> None:
        if address is not None and client is not None:
            raise TypeError("pass either address= (join a running scheduler) or client= (reuse a Client), not both")
        if (address is not None or client is not None) and (processes is not None or threads_per_worker is not None):
            raise TypeError(
                "processes= and threads_per_worker= shape the embedded cluster; with address= or client= the cluster already exists"
            )
        if client is not None and not isinstance(client, Client):
            raise TypeError(f"client must be a distributed.Client, not {type(client).__name__}")
        if client is not None and client.asynchronous:
            raise TypeError("client must be a synchronous distributed.Client (made without asynchronous=True): unifex waits in threads, not in an event loop")
        if threads_per_worker is not None and (isinstance(threads_per_worker, bool) or not isinstance(threads_per_worker, int) or threads_per_worker < 1):
            raise ValueError(f"threads_per_worker must be a positive int or None, not {threads_per_worker!r}")
        if zero_copy_threshold is not None and (isinstance(zero_copy_threshold, bool) or not isinstance(zero_copy_threshold, int) or zero_copy_threshold < 0):
            raise ValueError(f"zero_copy_threshold must be a number of bytes (an int >= 0) or None, not {zero_copy_threshold!r}")
        setup = WorkerSetup(initializer, initargs, finalizer, max_tasks_per_worker)
        memory = parse_bytes(max_memory_per_worker)
        setup_payload = None if setup.plain else _serialize_setup(setup)
        super().__init__(size, **common)
        self._threshold = zero_copy_threshold
        explicit_size = size is not None
        self._id = uuid.uuid4().hex[:12]
        self._finalizer = finalizer
        # what run_remote needs for worker_state(), the worker options and the logs
        self._log_topic = f"unifex-logs-{self._id}"
        self._life_spec = (self._id, setup_payload, self._log_topic, logging.getLogger().getEffectiveLevel(), memory)
        self._cluster: Any = None
        self._owns_client = client is None
        if client is not None:
            self._client = client
        elif address is not None:
            self._client = self._connect(address)
        else:
            use_processes = True if processes is None else bool(processes)
            self._cluster = cluster.local_cluster(self.size, threads_per_worker or 1, use_processes)
            try:
                self._client = Client(self._cluster, set_as_default=False)
            except BaseException:
                self._cluster.close()
                raise
        if not explicit_size and self._cluster is None:
            # the cluster's threads now; workers that join later do not change it
            self.size = max(1, sum(self._client.nthreads().values()))
        self._scheduler_address: str = str(self._client.scheduler.address)
        clients.setdefault(self._scheduler_address, weakref.WeakSet()).add(self._client)
        self._ac = _Completed(loop=self._client.loop, with_results=True, raise_errors=False)
        self._pending: deque[_Item] = deque()
        self._inflight: dict[str, Future[Any]] = {}
        self._dfutures: dict[str, Any] = {}
        self._batches: dict[str, _Batch] = {}
        self._scattered: dict[str, list[Any]] = {}  # key -> the dask futures of its big arguments
        self._shared: list[DaskShared[Any]] = []
        self._held: weakref.WeakSet[Future[Any]] = weakref.WeakSet()  # finished, their values still on the cluster
        self._stops: list[Any] = []  # stop_task calls running in the embedded cluster's loop
        self._callbacks = CallbackRunner(f"unifex-dask-callbacks-{self._id}")
        self._cond = threading.Condition(self._state_lock)
        self._collector: threading.Thread | None = None
        self._stopping = False
        self._torn_down = False
        self._helpers_ready = False
        self._names = itertools.count()
        self._client.subscribe_topic(self._log_topic, _emit_log_event)
        # dropped without close(): when collected (the collector thread ends when
        # idle, so nothing else holds the executor), its client and cluster go too
        self._dropped = weakref.finalize(self, _release_dropped, self._client if self._owns_client else None, self._cluster, self._callbacks)
        self._dropped.atexit = False

    def __repr__(self) -> str:
        where = "embedded" if self._cluster is not None else self._scheduler_address
        return super().__repr__()[:-1] + f" cluster={where}>"

    def _connect(self, address: str) -> Any:
        timeout = dask.utils.parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s")
        try:
            return Client(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
            raise ConnectionError(
                f"could not reach the dask scheduler at {address!r} within {timeout:g} s ({exc}); "
                "check the address and that `dask scheduler` runs there (the wait is dask's "
                "'distributed.comm.timeouts.connect' setting)"
            ) from exc

    # -- dispatch and collection -------------------------------------------------------

    def _dispatch(self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None) -> None:
        fut._callbacks = _Deferred(self._callbacks.post, fut._callbacks)
        if type(fut) is Future and self._threshold is not None:
            # before anyone waits on it: a thread already inside Future.result()
            # would return the placeholder of a value left on the cluster
            fut.__class__ = _HeldFuture
        # pickling runs user code (__reduce__) and scattering waits on the
        # cluster: both here, outside the state lock
        try:
            payload = _serialize_task(fn, args, kwargs)
            refs: list[Any] = []
            if self._threshold is not None and len(payload) > self._threshold:
                payload, refs = self._scatter_big(fn, args, kwargs)
        except Exception as exc:
            if fut.set_running_or_notify_cancel():
                fut.try_set_exception(exc)
            return
        with self._state_lock:
            self._pending.append((fut, fn, args, kwargs, timeout, None, (payload, refs)))
            self._pump()

    def _dispatch_batch(self, fut: Future[Any], fn: Callable[..., Any], batch: list[Any], flat: bool, start: int, per_call: dict[str, Any] | None = None) -> None:
        fut._callbacks = _Deferred(self._callbacks.post, fut._callbacks)
        self._queue_batch(fut, _Batch(fn, batch, flat, start), resumed=False)

    def _queue_batch(self, fut: Future[Any], batch: _Batch, resumed: bool) -> None:
        """Queue a ``map`` batch, pickled here, outside the state lock; a
        ``resumed`` batch (run again after a crash) goes first."""
        try:
            payload = _serialize_task(run_batch, batch.args(), {}, batch)
        except SerializationError as exc:
            if resumed or fut.set_running_or_notify_cancel():
                fut.try_set_exception(exc)
            return
        batch.resumed = resumed
        item: _Item = (fut, run_batch, (), {}, None, batch, (payload, []))
        with self._state_lock:
            if resumed and self._state == TERMINATED:  # the crash was reported after terminate()
                fut.try_set_exception(terminated_error())
                return
            if resumed:
                self._pending.appendleft(item)
            else:
                self._pending.append(item)
            self._pump()

    def _pump(self) -> None:
        """Hand queued tasks to dask while fewer than ``size`` are in flight;
        called with the state lock held."""
        pending, inflight = self._pending, self._inflight
        while pending and len(inflight) < self.size:
            fut, fn, args, _, timeout, batch, (payload, refs) = pending.popleft()
            if batch is not None and batch.resumed:
                if fut.done():
                    continue
            elif not fut.set_running_or_notify_cancel():
                continue
            name = getattr(_origin(batch.fn) if batch is not None else _origin(fn, args), "__name__", "task")
            key = f"unifex-{name}-{uuid.uuid4().hex}"
            if batch is None and self._threshold is not None:
                dfut = self._client.submit(run_remote, payload, timeout, *refs, life_spec=self._life_spec, hold=self._threshold, key=key, pure=False)
            else:
                dfut = self._client.submit(run_remote, payload, timeout, *refs, life_spec=self._life_spec, key=key, pure=False)
            key = dfut.key
            inflight[key] = fut
            self._dfutures[key] = dfut
            if batch is not None:
                self._batches[key] = batch
            if refs:
                self._scattered[key] = refs
            self._ac.add(dfut)
            if timeout is not None:
                self._timer.call_at(_monotonic() + timeout, _expire, fut)
            self._ensure_collector()
        if not pending and not inflight:
            self._cond.notify_all()

    def _scatter_big(self, fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[bytes, list[Any]]:
        """The task's payload with every argument above ``zero_copy_threshold``
        scattered to the cluster instead: the task graph carries its key, and
        dask moves the data to the worker that runs the task."""
        assert self._threshold is not None
        threshold = self._threshold
        big: list[Any] = []

        def swap(value: Any) -> Any:
            data = _dumps_value(value)
            if len(data) <= threshold:
                return value
            big.append(data)
            return Ref(len(big) - 1)

        args = tuple(swap(a) for a in args)
        kwargs = {k: swap(v) for k, v in kwargs.items()}
        refs = self._client.scatter(big, hash=False) if big else []
        return _serialize_task(fn, args, kwargs), list(refs)

    def _ensure_collector(self) -> None:
        if self._collector is None:
            self._collector = threading.Thread(target=self._collect, name=f"unifex-dask-collector-{self._id}", daemon=True)
            self._collector.start()
        else:
            self._cond.notify_all()

    def _collect(self) -> None:
        """The collector thread: settle futures as dask finishes them; at close,
        when nothing is left, release the client and the embedded cluster."""
        ac = self._ac
        while True:
            with self._cond:
                if not self._inflight and not self._pending and not self._stopping:
                    # idle: end, so that no thread holds an executor its owner dropped;
                    # the next hand-off to dask starts another collector
                    self._collector = None
                    return
                while not self._inflight and not self._stopping:
                    self._cond.wait()
                if not self._inflight and not self._pending:
                    break
            try:
                batch = ac.next_batch(block=True)
            except StopIteration:
                continue
            self._settle_batch(batch)
            del batch  # drop our references so dask releases the keys
        self._teardown()

    def _settle_batch(self, batch: list[tuple[Any, Any]]) -> None:
        while batch:
            dfut, outcome = batch.pop()
            self._settle(dfut, outcome)

    def _settle(self, dfut: Any, outcome: Any) -> None:
        key = dfut.key
        if outcome is _HELD:
            with self._state_lock:
                fut = self._inflight.get(key)
            if fut is None:
                return
            if not _can_hold(fut):
                self._ac.fetch(dfut)  # its value is read at once: gather it, it comes back here
                return
        with self._state_lock:
            fut = self._inflight.pop(key, None)
            self._dfutures.pop(key, None)
            batch = self._batches.pop(key, None)
            self._scattered.pop(key, None)
            self._pump()
        if fut is None:
            return
        status = dfut.status
        if outcome is _HELD:
            self._held.add(fut)
            # the embedded cluster's workers are on this machine: fetch straight from them;
            # a joined cluster's may be reachable only through its scheduler (the client's choice)
            fut.try_set_result(_Held(dfut, True if self._cluster is not None else None))
            return
        if status == "finished" and isinstance(outcome, (bytes, HeldOutcome)):
            try:
                ok, value, tb = outcome.loads() if isinstance(outcome, HeldOutcome) else dpickle.loads(outcome)
            except Exception as exc:
                fut.try_set_exception(SerializationError(f"the result of a task could not be deserialized here: {exc!r}; the class of the value must be importable in the submitting process"))
                return
            if ok:
                if tb and isinstance(value, tuple) and isinstance(value[1], BaseException):
                    value[1].__cause__ = RemoteTraceback(tb, WHERE)
                if batch is not None and batch.crash_error is not None and value[1] is None:
                    value = (value[0], batch.crash_error)  # the items before a crash, then the crash
                fut.try_set_result(value)
            else:
                if tb:
                    value.__cause__ = RemoteTraceback(tb, WHERE)
                fut.try_set_exception(value)
            return
        error = outcome[1] if isinstance(outcome, tuple) and len(outcome) == 3 else outcome
        if isinstance(error, distributed.KilledWorker):
            if batch is not None:
                self._batch_crashed(fut, batch, error)
            else:
                fut.try_set_exception(self._crash_error(error, "the task"))
        elif status == "cancelled" or isinstance(error, (asyncio.CancelledError, distributed.client.FutureCancelledError)):
            fut.try_set_exception(terminated_error())
        elif isinstance(error, BaseException):
            fut.try_set_exception(error)
        else:
            fut.try_set_exception(RuntimeError(f"dask reported the task {key} as {status!r} without an exception"))

    def _batch_crashed(self, fut: Future[Any], batch: _Batch, killed: Any) -> None:
        """A worker died running a ``map`` batch. Which item it was is unknown
        (recording each item's index costs a round trip), so the batch runs
        again recording it; if the crash recurs it is raised at its item's
        position, after the results of the items before it, which run once
        more (their results died with the worker). An item before a crash may
        so run three times, the crashing one twice."""
        if batch.crash_error is not None:  # the re-run of the items before a crash crashed too
            fut.try_set_result(([], self._crash_error(killed, f"a map batch of {describe_call(batch.fn)} from input {batch.start}")))
            return
        if batch.exact_from is None:
            logger.warning("unifex: a dask worker died during a map batch of %s; running the batch again to find the item", describe_call(batch.fn))
            with contextlib.suppress(Exception):
                self._ensure_helpers()
            batch.exact_from = 0
            batch.mark = f"{self._id}/mark-{next(self._names)}"
            self._requeue(fut, batch)
            return
        index = None
        with contextlib.suppress(Exception):
            index = call(self._scheduler_address, self._client, "read_mark", batch.mark or "")
        index = min(max(0, index if isinstance(index, int) else 0), len(batch.items) - 1)
        item = batch.items[index]
        what = f"{describe_call(batch.fn, (item,) if batch.flat else tuple(item))} (input {batch.start + index} of the map)"
        error = self._crash_error(killed, what)
        if index == 0:
            fut.try_set_result(([], error))
            return
        head = _Batch(batch.fn, batch.items[:index], batch.flat, batch.start)
        head.crash_error = error
        self._requeue(fut, head)

    def _requeue(self, fut: Future[Any], batch: _Batch) -> None:
        self._queue_batch(fut, batch, resumed=True)

    def _crash_error(self, exc: Any, what: str) -> WorkerCrashedError:
        worker = getattr(exc, "last_worker", None)
        pid = getattr(worker, "pid", None)
        address = getattr(worker, "address", None) or str(worker)
        wait = cluster.EXITCODE_WAIT_EMBEDDED if self._cluster is not None else cluster.EXITCODE_WAIT
        exitcode = cluster.exit_code(self._client, pid, wait) if pid else None
        how = exit_text(exitcode) if exitcode is not None else "died (exit status unknown: only the nannies unifex starts report it)"
        tries = getattr(exc, "allowed_failures", 0) + 1
        return WorkerCrashedError(
            f"the dask worker {address} (pid {pid}) {how} while running {what} "
            f"(dask tried {tries} worker{'s' if tries > 1 else ''}); the cluster replaces the worker and keeps going",
            pid=pid,
            exitcode=exitcode,
        )

    # -- lifecycle ---------------------------------------------------------------------

    def _shutdown(self, wait: bool) -> None:
        with self._state_lock:
            self._stopping = True
            if self._collector is None:
                self._collector = threading.Thread(target=self._collect, name=f"unifex-dask-collector-{self._id}", daemon=True)
                self._collector.start()
            else:
                self._cond.notify_all()
            collector = self._collector
        # from a callback, waiting would wait for that callback itself
        if wait and collector is not threading.current_thread() and not self._callbacks.is_current():
            collector.join()
            self._stop_timer()

    def _teardown(self) -> None:
        with self._state_lock:
            if self._torn_down:
                return
            self._torn_down = True
        self._dropped.detach()
        self._callbacks.stop()  # every callback has run before the helpers go
        self._fetch_held()
        self._wait_stops()
        self._end_worker_lives()
        for handle in self._shared:
            handle._release()
        self._shared.clear()
        if self._helpers_ready:
            with contextlib.suppress(Exception):
                self._client.sync(self._client.scheduler.unifex_helper, action="drop", name=self._id + "/")
        clients.get(self._scheduler_address, weakref.WeakSet()).discard(self._client)
        if self._owns_client:
            with contextlib.suppress(Exception):
                self._client.close()
        if self._cluster is not None:
            gone.add(self._id)
            with contextlib.suppress(Exception):
                self._cluster.sync(cluster.close_quietly, list(self._cluster.workers.values()))
            with contextlib.suppress(Exception):
                self._cluster.close()

    def _fetch_held(self) -> None:
        """Closing: the values that stayed on the cluster come here now, since
        the cluster's copy goes with the executor; one that cannot be fetched
        is raised by its future's ``result()``."""
        futures = [f for f in list(self._held) if type(f._result) is _Held]
        self._held.clear()
        for fut in futures:
            held = fut._result
            with contextlib.suppress(BaseException):
                held.take(fut, FETCH_AT_CLOSE_TIMEOUT)
            if fut._result is held and held.error is None:
                held.error = TimeoutError(f"the task's value, kept on the cluster, did not arrive within {FETCH_AT_CLOSE_TIMEOUT:g} s while the executor closed")

    def _stop_running(self, fut: Future[Any]) -> None:
        """asyncio cancelled the awaiter of a running task: its future fails
        with ``CancelledError`` ("stopped") and dask forgets the task. On the
        embedded cluster (worker processes) its worker process is killed and
        its nanny starts a new one; the other tasks that worker ran are handed
        to other workers (run again). A joined cluster's worker is not ours to
        kill: the task runs on until its next unifex wait (it sees the
        cancellation) or its end."""
        with self._state_lock:
            key = next((k for k, f in self._inflight.items() if f is fut), None)
            if key is None:
                return
            del self._inflight[key]
            dfut = self._dfutures.pop(key, None)
            self._batches.pop(key, None)
            self._scattered.pop(key, None)
        fut.try_set_exception(stopped_error())
        embedded = self._cluster
        if embedded is not None and dfut is not None:
            with contextlib.suppress(Exception):
                done = asyncio.run_coroutine_threadsafe(cluster.stop_task(embedded.scheduler, key, self._client.id), embedded.loop.asyncio_loop)
                with self._state_lock:
                    self._stops = [s for s in self._stops if not s.done()] + [done]
        elif dfut is not None:
            with contextlib.suppress(Exception):
                dfut.cancel()
        with self._state_lock:
            self._pump()
        del dfut

    def _wait_stops(self) -> None:
        """Closing: let the workers being stopped come back before the cluster goes."""
        with self._state_lock:
            stops, self._stops = self._stops, []
        for done in stops:
            with contextlib.suppress(Exception):
                done.result(STOP_TIMEOUT)

    def _end_worker_lives(self) -> None:
        """Closing: every dask worker runs the finalizer of its unifex worker
        (not after terminate) and drops its state; the log topic is left."""
        with contextlib.suppress(Exception):
            self._client.unsubscribe_topic(self._log_topic)
        if self._cluster is not None:
            with contextlib.suppress(Exception):
                self._client.run(cluster.quiet_worker_logs)
        if self._cluster is not None and (self._finalizer is None or self._state == TERMINATED):
            return  # the embedded cluster goes with its states
        with contextlib.suppress(Exception):
            self._client.run(end_lives, self._id, self._finalizer is not None and self._state != TERMINATED)

    def _cancel_queued(self) -> None:
        with self._state_lock:
            queued = [item[0] for item in self._pending]
        for fut in queued:  # _pump skips a cancelled task
            fut.cancel()

    def _terminate(self) -> None:
        with self._state_lock:
            queued = [item[0] for item in self._pending]
            self._pending.clear()
            running = list(self._inflight.values())
            dfutures = list(self._dfutures.values())
            self._inflight.clear()
            self._dfutures.clear()
            self._batches.clear()
            self._scattered.clear()
            self._stopping = True
            self._cond.notify_all()
            collector = self._collector
        fail_unfinished(queued)  # a re-run batch's future is already running
        for fut in running:
            fut.try_set_exception(terminated_error())
        if dfutures:
            with contextlib.suppress(Exception):
                self._client.cancel(dfutures)
        del dfutures
        self._fetch_held()
        if self._cluster is not None:
            # close the workers first with a short grace: running tasks die with them
            with contextlib.suppress(Exception):
                self._cluster.sync(cluster.close_workers, list(self._cluster.workers.values()))
        if collector is not None and collector is not threading.current_thread() and not self._callbacks.is_current():
            collector.join()
        elif collector is None:
            self._teardown()
        self._stop_timer()

    # -- share (data) --------------------------------------------------------------------

    def _share(self, obj: T) -> Shared[T]:
        """Scatter ``obj`` to every worker once (``broadcast=True``); tasks get
        a handle holding its key, resolved from the worker's memory."""
        try:
            data = _dumps_value(obj)
        except Exception as exc:
            raise SerializationError(f"the object to share ({type(obj).__name__}) could not be serialized to send to the dask workers: {exc!r}") from exc
        [dfut] = self._client.scatter([data], broadcast=True, hash=False)
        handle: DaskShared[T] = DaskShared(obj, dfut.key, dfut)
        with self._state_lock:
            if self._state:
                handle._release()
                raise self._closed_error()
            self._shared.append(handle)
        return handle

    # -- helpers (SPEC 4) ----------------------------------------------------------------

    def _ensure_helpers(self) -> None:
        if not self._helpers_ready:
            self._client.register_plugin(HelperPlugin(), name=PLUGIN_NAME)
            self._helpers_ready = True

    def _helper_name(self, kind: str, **init: Any) -> tuple[str, str]:
        if self._state:
            raise self._closed_error()
        self._ensure_helpers()
        name = f"{self._id}/{kind}-{next(self._names)}"
        call(self._scheduler_address, self._client, "create", name, kind=kind, **init)
        return name, self._scheduler_address

    def Lock(self) -> DaskLock:
        return DaskLock(*self._helper_name("sem", value=1, bound=1))

    def RLock(self) -> DaskRLock:
        return DaskRLock(*self._helper_name("rlock"))

    def Semaphore(self, value: int = 1) -> DaskSemaphore:
        value = semaphore_value(value)
        return DaskSemaphore(*self._helper_name("sem", value=value, bound=None))

    def BoundedSemaphore(self, value: int = 1) -> DaskBoundedSemaphore:
        value = semaphore_value(value)
        return DaskBoundedSemaphore(*self._helper_name("sem", value=value, bound=value))

    def Event(self) -> DaskEvent:
        return DaskEvent(*self._helper_name("event"))

    def Condition(self, lock: RLockLike | None = None) -> DaskCondition:
        if lock is None:
            lock = self.RLock()
        if not isinstance(lock, (DaskLock, DaskRLock)):
            raise TypeError(f"a dask Condition needs a Lock or RLock made by the same dask executor, not {type(lock).__name__}")
        name, address = self._helper_name("cond")
        return DaskCondition(name, address, lock)

    def Queue(self, maxsize: int = 0) -> DaskQueue:
        return DaskQueue(*self._helper_name("queue", maxsize=queue_maxsize(maxsize)))

    def dict(self, *args: Any, **kwargs: Any) -> DaskDict:
        d = DaskDict(*self._helper_name("dict"))
        initial = dict(*args, **kwargs)
        if initial:
            d.update(initial)
        return d


def _expire(fut: Future[Any]) -> None:
    fut.try_set_exception(TaskTimeoutError("the task ran past its timeout; on dask it runs on until its next unifex.sleep or helper wait"))


def _serialize_setup(setup: WorkerSetup) -> bytes:
    try:
        return dpickle.dumps(setup)
    except Exception as exc:
        raise SerializationError(f"the worker options (initializer, initargs, finalizer) could not be pickled for the dask workers: {exc!r}") from None


def _emit_log_event(event: Any) -> None:
    """A worker's logging record, in the client's event loop: hand it to the
    parent's logger of the same name."""
    with contextlib.suppress(Exception):
        _, record = event
        emit_forwarded(dict(record))
