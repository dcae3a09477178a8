"""The ``dask`` kind, client side: the executor that hands tasks to a dask.distributed
cluster, embedded or joined, and settles their futures in the submitting process.

Three ways to start, chosen by the options::

    unifex.executor("dask")                           # an embedded LocalCluster of `size` worker processes
    unifex.executor("dask", address="tcp://h:8786")   # join a running scheduler; never shut it down
    unifex.executor("dask", client=my_client)         # reuse a distributed.Client; never close it

Data flow::

    caller --submit--> _pending (local FIFO) --pump: at most `size` in flight--> client.submit(run_remote, payload)
                                                                                      |  scheduler -> worker
    unifex.Future <--settle, callbacks-- collector thread <--(dask future, bytes)-- distributed.as_completed

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
  client's event loop) and settles the unifex futures, so done-callbacks run in
  the submitting process and never on distributed's single callback thread
  (they run one at a time there: a callback must not wait on another future of
  the same executor).
* ``map`` batches: ``chunksize=None`` gives ``ceil(n / (4 * size))`` inputs per
  dask task (at most 10,000) when the input length is known, else 1, so
  100,000 tiny tasks become ``4 * size`` scheduler tasks.
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
import math
import os
import pickle
import site
import sys
import sysconfig
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable
from typing import Any, ClassVar, final

import cloudpickle
import dask
import distributed as _distributed

from ..._base import BaseExecutor, terminated_error
from ..._errors import SerializationError, TaskTimeoutError, WorkerCrashedError, describe_exitcode
from ..._future import Future
from ..._helpers import queue_maxsize, semaphore_value
from ..._protocols import RLockLike
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
from .scheduler import PLUGIN_NAME, HelperPlugin
from .worker import RUNNERS, RemoteTraceback, describe, dpickle, run_remote

__all__ = ["DaskExecutor"]

#: distributed is only partly annotated; its API is used here as dynamic
distributed: Any = _distributed
Client: Any = _distributed.Client

logger = logging.getLogger("unifex")

#: largest batch ``map`` makes by itself
MAX_CHUNKSIZE = 10_000

_monotonic = time.monotonic


def _installed_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"]}
    with contextlib.suppress(AttributeError):
        found.update(site.getsitepackages())
    return tuple(os.path.join(os.path.realpath(p), "") for p in found if p)


_INSTALLED = _installed_prefixes()
_by_value: dict[str, bool] = {}


def _ship_by_value(fn: Any) -> bool:
    """Whether ``fn`` comes from a module that a cluster cannot import (a test
    module or a script next to the program, not an installed package): such a
    module is registered with cloudpickle to travel by value, so its functions
    and classes reach the workers. Installed packages (and unifex) go by name."""
    module_name = getattr(fn, "__module__", None)
    if not isinstance(module_name, str) or module_name == "__main__" or module_name.partition(".")[0] == "unifex":
        return False
    known = _by_value.get(module_name)
    if known is not None:
        return known
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    local = False
    if module is not None and isinstance(path, str):
        real = os.path.realpath(path)
        local = not real.startswith(_INSTALLED) and "site-packages" not in real and "dist-packages" not in real
        if local:
            cloudpickle.register_pickle_by_value(module)
    _by_value[module_name] = local
    return local


def _serialize_task(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bytes:
    """Pickle ``(fn, args, kwargs)``; on failure say which part would not go."""
    try:
        if _ship_by_value(args[0] if fn in RUNNERS else fn):
            return cloudpickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]
        return dpickle.dumps((fn, args, kwargs))
    except Exception as whole:
        what = describe(fn, args, kwargs)
        parts: list[tuple[str, Any]] = [("the function", fn)]
        if fn in RUNNERS:
            parts = [("the function", args[0])] + [(f"input {i}", item) for i, item in enumerate(args[1])]
        else:
            parts += [(f"argument {i}", a) for i, a in enumerate(args)] + [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
        for name, value in parts:
            try:
                dpickle.dumps(value)
            except Exception as exc:
                raise SerializationError(
                    f"{name} of {what} could not be serialized to send to a dask worker: {exc!r}; pass picklable values "
                    "(helpers made by this executor travel; locks, sockets and open files do not)"
                ) from exc
        raise SerializationError(f"{what} could not be serialized to send to a dask worker: {whole!r}") from whole



#: a task waiting for a slot: its future, the pickled call, a name for its dask key, its timeout
_Item = tuple[Future[Any], bytes, str, "float | None"]


@final
class DaskExecutor(BaseExecutor):
    """Tasks on a dask.distributed cluster: embedded, joined by ``address`` or
    through a user's ``client``."""

    kind: ClassVar[str] = "dask"
    options: ClassVar[frozenset[str]] = frozenset({"address", "client", "processes", "threads_per_worker"})
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
        super().__init__(size)
        explicit_size = size is not None
        self._id = uuid.uuid4().hex[:12]
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
        self._ac = distributed.as_completed(loop=self._client.loop, with_results=True, raise_errors=False)
        self._pending: deque[_Item] = deque()
        self._inflight: dict[str, Future[Any]] = {}
        self._dfutures: dict[str, Any] = {}
        self._cond = threading.Condition(self._state_lock)
        self._collector: threading.Thread | None = None
        self._stopping = False
        self._torn_down = False
        self._helpers_ready = False
        self._names = itertools.count()

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

    def _default_chunksize(self, hint: int | None) -> int:
        if hint is None:
            return 1
        return max(1, min(MAX_CHUNKSIZE, math.ceil(hint / (4 * self.size))))

    def _dispatch(self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None) -> None:
        # pickling runs user code (__reduce__): outside the state lock
        try:
            payload = _serialize_task(fn, args, kwargs)
        except SerializationError as exc:
            if fut.set_running_or_notify_cancel():
                fut.try_set_exception(exc)
            return
        name = getattr(args[0] if fn in RUNNERS else fn, "__name__", "task")
        with self._state_lock:
            self._pending.append((fut, payload, name, timeout))
            self._pump()

    def _pump(self) -> None:
        """Hand queued tasks to dask while fewer than ``size`` are in flight;
        called with the state lock held."""
        pending, inflight = self._pending, self._inflight
        while pending and len(inflight) < self.size:
            fut, payload, name, timeout = pending.popleft()
            if not fut.set_running_or_notify_cancel():
                continue
            dfut = self._client.submit(run_remote, payload, timeout, key=f"unifex-{name}-{uuid.uuid4().hex}", pure=False)
            inflight[dfut.key] = fut
            self._dfutures[dfut.key] = dfut
            self._ac.add(dfut)
            if timeout is not None:
                self._timer.call_at(_monotonic() + timeout, _expire, fut)
            self._ensure_collector()
        if not pending and not inflight:
            self._cond.notify_all()

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
        with self._state_lock:
            fut = self._inflight.pop(key, None)
            self._dfutures.pop(key, None)
            self._pump()
        if fut is None:
            return
        status = dfut.status
        if status == "finished" and isinstance(outcome, bytes):
            try:
                ok, value, tb = dpickle.loads(outcome)
            except Exception as exc:
                fut.try_set_exception(SerializationError(f"the result of a task could not be deserialized here: {exc!r}; the class of the value must be importable in the submitting process"))
                return
            if ok:
                if tb and isinstance(value, tuple) and isinstance(value[1], BaseException):
                    value[1].__cause__ = RemoteTraceback(f'\n"""\n{tb}"""')
                fut.try_set_result(value)
            else:
                if tb:
                    value.__cause__ = RemoteTraceback(f'\n"""\n{tb}"""')
                fut.try_set_exception(value)
            return
        error = outcome[1] if isinstance(outcome, tuple) and len(outcome) == 3 else outcome
        if isinstance(error, distributed.KilledWorker):
            fut.try_set_exception(self._crash_error(error))
        elif status == "cancelled" or isinstance(error, (asyncio.CancelledError, distributed.client.FutureCancelledError)):
            fut.try_set_exception(terminated_error())
        elif isinstance(error, BaseException):
            fut.try_set_exception(error)
        else:
            fut.try_set_exception(RuntimeError(f"dask reported the task {key} as {status!r} without an exception"))

    def _crash_error(self, exc: Any) -> WorkerCrashedError:
        worker = getattr(exc, "last_worker", None)
        pid = getattr(worker, "pid", None)
        address = getattr(worker, "address", None) or str(worker)
        exitcode = cluster.exit_code(self._client, pid) if pid else None
        how = f"with {describe_exitcode(exitcode)}" if exitcode is not None else "(exit status unknown: only the nannies unifex starts report it)"
        tries = getattr(exc, "allowed_failures", 0) + 1
        return WorkerCrashedError(
            f"the dask worker {address} (pid {pid}) died {how} while running the task "
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
        if wait and collector is not threading.current_thread():
            collector.join()
            self._stop_timer()

    def _teardown(self) -> None:
        with self._state_lock:
            if self._torn_down:
                return
            self._torn_down = True
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
                self._cluster.close()

    def _terminate(self) -> None:
        with self._state_lock:
            queued = [item[0] for item in self._pending]
            self._pending.clear()
            running = list(self._inflight.values())
            dfutures = list(self._dfutures.values())
            self._inflight.clear()
            self._dfutures.clear()
            self._stopping = True
            self._cond.notify_all()
            collector = self._collector
        for fut in queued:
            fut.cancel()
        for fut in running:
            fut.try_set_exception(terminated_error())
        if dfutures:
            with contextlib.suppress(Exception):
                self._client.cancel(dfutures)
        del dfutures
        if self._cluster is not None:
            # close the workers first with a short grace: running tasks die with them
            with contextlib.suppress(Exception):
                self._cluster.sync(cluster.close_workers, list(self._cluster.workers.values()))
        if collector is not None and collector is not threading.current_thread():
            collector.join()
        else:
            self._teardown()
        self._stop_timer()

    # -- helpers (SPEC 4) ----------------------------------------------------------------

    def _helper_name(self, kind: str, **init: Any) -> tuple[str, str]:
        if self._state:
            raise self._closed_error()
        if not self._helpers_ready:
            self._client.register_plugin(HelperPlugin(), name=PLUGIN_NAME)
            self._helpers_ready = True
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
