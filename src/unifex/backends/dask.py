"""The ``dask`` kind: tasks on a dask.distributed cluster, embedded or joined.

Three ways to start, chosen by the options::

    unifex.executor("dask")                           # an embedded LocalCluster of `size` worker processes
    unifex.executor("dask", address="tcp://h:8786")   # join a running scheduler; never shut it down
    unifex.executor("dask", client=my_client)         # reuse a distributed.Client; never close it

Data flow::

    caller --submit--> _pending (local FIFO) --pump: at most `size` in flight--> client.submit(_run_remote, payload)
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
(:class:`_HelperService`), the way distributed's own ``Lock``/``Event``/``Queue``
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
import queue as _queue_module
import site
import socket
import sys
import sysconfig
import threading
import time
import traceback
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any, ClassVar, final

import cloudpickle
import dask
import distributed as _distributed
from distributed import Nanny
from distributed.diagnostics.plugin import SchedulerPlugin

from .. import _wait
from .._base import BaseExecutor, describe_call, run_chunk, run_items, terminated_error
from .._errors import ExecutorClosedError, SerializationError, TaskTimeoutError, WorkerCrashedError, describe_exitcode
from .._future import Future
from .._shared import LockDelegate, wait_for

__all__ = ["DaskExecutor"]

_RUNNERS = (run_chunk, run_items)  # the batch runners of map

#: distributed is only partly annotated; its API is used here as dynamic
distributed: Any = _distributed
Client: Any = _distributed.Client
LocalCluster: Any = _distributed.LocalCluster

logger = logging.getLogger("unifex")

#: scheduler settings of the embedded cluster: a crash fails only its own task, at once
EMBEDDED_SCHEDULER_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
}
#: largest batch ``map`` makes by itself
MAX_CHUNKSIZE = 10_000
#: how long a crash report waits for the dead worker's exit code from its nanny
EXITCODE_WAIT = 1.0
_EXIT_KEY = "unifex-worker-exit"
_PLUGIN_NAME = "unifex-helpers"

_monotonic = time.monotonic


class _Pickle:
    """pickle, with cloudpickle where plain pickle cannot carry the value (lambdas,
    closures, anything from ``__main__``), as dask does, but without its log
    record for every value that fails."""

    @staticmethod
    def dumps(value: Any) -> bytes:
        try:
            data = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception:
            return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]
        if b"__main__" in data:
            return cloudpickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]
        return data

    loads = staticmethod(pickle.loads)


dpickle = _Pickle


# -- on the worker --------------------------------------------------------------------


class _RemoteTraceback(Exception):
    """The traceback of a task's exception as text, attached as ``__cause__``."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def _describe(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if fn in _RUNNERS and len(args) == 2:
        inner = getattr(args[0], "__qualname__", None) or repr(args[0])
        return f"map({inner}) over a batch of {len(args[1])} inputs"
    return describe_call(fn, args, kwargs)


def _dumps_outcome(ok: bool, value: Any, tb: str | None, what: str) -> bytes:
    try:
        return dpickle.dumps((ok, value, tb))
    except Exception as exc:
        part = "result" if ok else f"exception {type(value).__name__}: {value}"
        err = SerializationError(f"the {part} of {what} could not be serialized to return from the dask worker: {exc!r}; return plain picklable values")
        return dpickle.dumps((False, err, tb))


class _WorkerWaits:
    """The wait context of a task thread on a dask worker: sleeps and helper
    waits come in slices so that a cancelled task (``terminate()`` on a joined
    cluster) raises at its next wait instead of blocking its worker thread."""

    SLICE = 0.25

    def __init__(self, key: str) -> None:
        self.key = key
        try:
            self.worker: Any = distributed.get_worker()
        except ValueError:
            self.worker = None

    def cancelled(self) -> bool:
        worker = self.worker
        if worker is None or not self.key:
            return False
        ts = worker.state.tasks.get(self.key)
        return ts is None or ts.state in ("cancelled", "released", "forgotten")

    def check(self) -> None:
        if self.cancelled():
            raise terminated_error()

    def waiter(self, source: object) -> _wait.Waiter:
        return _SlicedWaiter(self)

    def sleep(self, seconds: float) -> None:
        end = _monotonic() + seconds
        while True:
            self.check()
            bounded, is_deadline = _wait.clamp(max(0.0, end - _monotonic()))
            assert bounded is not None
            step = min(bounded, self.SLICE)
            if step > 0:
                time.sleep(step)
            if step >= bounded:
                if is_deadline:
                    raise _wait.deadline_passed()
                if _monotonic() >= end:
                    return


class _SlicedWaiter:
    __slots__ = ("_ctx", "_inner")

    def __init__(self, ctx: _WorkerWaits) -> None:
        self._ctx = ctx
        self._inner = _wait.ThreadWaiter()

    def notify(self) -> None:
        self._inner.notify()

    def wait(self, timeout: float | None) -> bool:
        end = None if timeout is None else _monotonic() + timeout
        while True:
            self._ctx.check()
            left = None if end is None else max(0.0, end - _monotonic())
            step = _WorkerWaits.SLICE if left is None else min(left, _WorkerWaits.SLICE)
            if self._inner.wait(step):
                return True
            if end is not None and _monotonic() >= end:
                return False


def _current_worker_waits() -> _WorkerWaits | None:
    ctx = _wait.current()
    return ctx if isinstance(ctx, _WorkerWaits) else None


def _run_remote(payload: bytes, timeout: float | None) -> bytes:
    """Run one task on a dask worker: unpickle, run with the task's deadline and
    cancellation check in place, and return ``(ok, value, traceback)`` pickled."""
    try:
        fn, args, kwargs = dpickle.loads(payload)
    except Exception as exc:
        err = SerializationError(
            f"the task could not be deserialized on the dask worker {socket.gethostname()} (pid {os.getpid()}): {exc!r}; "
            "every module the function needs, unifex included, must be importable there"
        )
        return _dumps_outcome(False, err, traceback.format_exc(), "the task")
    key = ""
    with contextlib.suppress(Exception):
        key = str(distributed.get_worker().get_current_task())
    ctx = _WorkerWaits(key)
    _wait.push_context(ctx)
    if timeout is not None:
        _wait.set_task_deadline(_monotonic() + timeout)
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:
        return _dumps_outcome(False, exc, traceback.format_exc(), _describe(fn, args, kwargs))
    finally:
        _wait.set_task_deadline(None)
        _wait.remove_context(ctx)
    tb: str | None = None
    if fn in _RUNNERS and value[1] is not None:  # a map batch stopped at an error: keep its traceback too
        tb = "".join(traceback.format_exception(value[1]))
    return _dumps_outcome(True, value, tb, _describe(fn, args, kwargs))


class _ReportingNanny(Nanny):  # type: ignore[misc]
    """A nanny that tells the scheduler how its worker process ended, so a
    ``WorkerCrashedError`` can name the exit code or signal."""

    _unifex_pid: int | None = None

    async def instantiate(self) -> Any:
        status = await super().instantiate()
        self._unifex_pid = self.pid
        return status

    def _on_worker_exit_sync(self, exitcode: int) -> None:
        pid = self._unifex_pid
        if pid is not None:
            with contextlib.suppress(Exception):
                self._ongoing_background_tasks.call_soon(self._unifex_report_exit, pid, exitcode)
        super()._on_worker_exit_sync(exitcode)  # type: ignore[no-untyped-call]

    async def _unifex_report_exit(self, pid: int, exitcode: int) -> None:
        with contextlib.suppress(Exception):
            await self.scheduler.set_metadata(keys=[_EXIT_KEY, str(pid)], value=exitcode)


# -- the executor ---------------------------------------------------------------------


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
        if _ship_by_value(args[0] if fn in _RUNNERS else fn):
            return cloudpickle.dumps((fn, args, kwargs), protocol=pickle.HIGHEST_PROTOCOL)  # type: ignore[no-any-return]
        return dpickle.dumps((fn, args, kwargs))
    except Exception as whole:
        what = _describe(fn, args, kwargs)
        parts: list[tuple[str, Any]] = [("the function", fn)]
        if fn in _RUNNERS:
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


_Item = tuple[Future[Any], Callable[..., Any], tuple[Any, ...], dict[str, Any], "float | None"]
#: scheduler address -> the clients of live executors there, for helpers used in this process
_clients: dict[str, weakref.WeakSet[Any]] = {}


def _client_for(address: str) -> Any:
    for client in list(_clients.get(address, ())):
        if client.status == "running":
            return client
    return None
#: ids of executors whose embedded cluster was closed: their helpers need no round trip to learn it
_gone: set[str] = set()


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

    @classmethod
    def test_configurations(cls) -> list[tuple[str, dict[str, Any]]]:
        """The conformance suite joins one shared cluster (started once per test
        session in its own process) unless ``UNIFEX_DASK_EMBEDDED=1`` asks for an
        embedded cluster per executor (slow: about a second per test)."""
        if os.environ.get("UNIFEX_DASK_EMBEDDED") == "1":
            return [("dask-embedded", {})]
        from ..testing import dask_cluster

        return [("dask", {"address": dask_cluster.address()})]

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
            with dask.config.set(EMBEDDED_SCHEDULER_CONFIG):
                use_processes = True if processes is None else bool(processes)
                self._cluster = LocalCluster(
                    n_workers=self.size,
                    threads_per_worker=threads_per_worker or 1,
                    processes=use_processes,
                    dashboard_address=":0",  # any free port: several executors may run at once
                    scheduler_kwargs={"dashboard": False},
                    worker_class=_ReportingNanny if use_processes else None,
                )
            try:
                self._client = Client(self._cluster, set_as_default=False)
            except BaseException:
                self._cluster.close()
                raise
        if not explicit_size and self._cluster is None:
            # the cluster's threads now; workers that join later do not change it
            self.size = max(1, sum(self._client.nthreads().values()))
        self._scheduler_address: str = str(self._client.scheduler.address)
        _clients.setdefault(self._scheduler_address, weakref.WeakSet()).add(self._client)
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
        self._pending.append((fut, fn, args, kwargs, timeout))
        self._pump()

    def _pump(self) -> None:
        """Hand queued tasks to dask while fewer than ``size`` are in flight;
        called with the state lock held."""
        pending, inflight = self._pending, self._inflight
        while pending and len(inflight) < self.size:
            fut, fn, args, kwargs, timeout = pending.popleft()
            if not fut.set_running_or_notify_cancel():
                continue
            try:
                payload = _serialize_task(fn, args, kwargs)
            except SerializationError as exc:
                fut.try_set_exception(exc)
                continue
            name = getattr(args[0] if fn in _RUNNERS else fn, "__name__", "task")
            dfut = self._client.submit(_run_remote, payload, timeout, key=f"unifex-{name}-{uuid.uuid4().hex}", pure=False)
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
                    value[1].__cause__ = _RemoteTraceback(f'\n"""\n{tb}"""')
                fut.try_set_result(value)
            else:
                if tb:
                    value.__cause__ = _RemoteTraceback(f'\n"""\n{tb}"""')
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
        exitcode: int | None = None
        if pid:
            end = _monotonic() + EXITCODE_WAIT
            while exitcode is None and _monotonic() < end:
                try:
                    exitcode = self._client.get_metadata([_EXIT_KEY, str(pid)], default=None)
                except Exception:
                    break
                if exitcode is None:
                    time.sleep(0.05)
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
        _clients.get(self._scheduler_address, weakref.WeakSet()).discard(self._client)
        if self._owns_client:
            with contextlib.suppress(Exception):
                self._client.close()
        if self._cluster is not None:
            _gone.add(self._id)
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
                self._cluster.sync(_close_workers, list(self._cluster.workers.values()))
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
            self._client.register_plugin(_HelperPlugin(), name=_PLUGIN_NAME)
            self._helpers_ready = True
        name = f"{self._id}/{kind}-{next(self._names)}"
        _call(self._scheduler_address, self._client, "create", name, kind=kind, **init)
        return name, self._scheduler_address

    def Lock(self) -> DaskLock:
        return DaskLock(*self._helper_name("sem", value=1, bound=1))

    def RLock(self) -> DaskRLock:
        return DaskRLock(*self._helper_name("rlock"))

    def Semaphore(self, n: int = 1) -> DaskSemaphore:
        _check_count(n)
        return DaskSemaphore(*self._helper_name("sem", value=n, bound=None))

    def BoundedSemaphore(self, n: int = 1) -> DaskBoundedSemaphore:
        _check_count(n)
        return DaskBoundedSemaphore(*self._helper_name("sem", value=n, bound=n))

    def Event(self) -> DaskEvent:
        return DaskEvent(*self._helper_name("event"))

    def Condition(self, lock: Any = None) -> DaskCondition:
        if lock is None:
            lock = self.RLock()
        if not isinstance(lock, (DaskLock, DaskRLock)):
            raise TypeError(f"a dask Condition needs a Lock or RLock made by the same dask executor, not {type(lock).__name__}")
        name, address = self._helper_name("cond")
        return DaskCondition(name, address, lock)

    def Queue(self, maxsize: int = 0) -> DaskQueue:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int):
            raise TypeError(f"maxsize must be an int, not {maxsize!r}")
        return DaskQueue(*self._helper_name("queue", maxsize=maxsize))

    def dict(self, *args: Any, **kwargs: Any) -> DaskDict:
        d = DaskDict(*self._helper_name("dict"))
        initial = dict(*args, **kwargs)
        if initial:
            d.update(initial)
        return d


def _expire(fut: Future[Any]) -> None:
    fut.try_set_exception(TaskTimeoutError("the task ran past its timeout; on dask it runs on until its next unifex.sleep or helper wait"))


async def _close_workers(workers: list[Any]) -> None:
    await asyncio.gather(*(w.close(timeout=0.5, reason="unifex-terminate") if isinstance(w, Nanny) else w.close(executor_wait=False) for w in workers), return_exceptions=True)


def _check_count(n: object) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"semaphore initial value must be an int >= 0, not {n!r}")


# -- helpers: the client side -----------------------------------------------------------


#: operations that only hand something back (a release, a set, a notify): once the
#: helper's executor is gone nobody can observe them, so they are accepted and
#: dropped, and cleanup code such as ``finally: event.set()`` after
#: ``terminate()`` does not raise; every other operation raises ExecutorClosedError
_HARMLESS_WHEN_GONE = frozenset({"set", "clear", "release", "notify"})


def _gone_error(address: str) -> ExecutorClosedError:
    return ExecutorClosedError(
        f"this helper belonged to a dask executor (scheduler {address}) that was closed; helpers work until their executor is closed, "
        "so make helpers from a running executor"
    )


def _call(address: str, client: Any, op: str, name: str, **kwargs: Any) -> Any:
    """One operation on the helper service: through the executor's client in
    the submitting process, through the worker's connection inside a task, and
    through a short-lived client where neither exists (a helper that came back
    from a task to a process with no client of that scheduler)."""
    reply = _call_scheduler(address, client, op, name, **kwargs)
    if reply == "gone":
        if op in _HARMLESS_WHEN_GONE:
            return "ok"
        raise _gone_error(address)
    return reply


def _call_scheduler(address: str, client: Any, op: str, name: str, **kwargs: Any) -> Any:
    if name.partition("/")[0] in _gone:
        return "gone"
    try:
        worker = distributed.get_worker()
    except ValueError:
        worker = None
    try:
        if worker is not None and worker.scheduler.address == address:
            return distributed.utils.sync(worker.loop, worker.scheduler.unifex_helper, action=op, name=name, **kwargs)
        if client is None or client.status != "running":
            client = _client_for(address)
        if client is not None and client.status == "running":
            return client.sync(client.scheduler.unifex_helper, action=op, name=name, **kwargs)
    except (OSError, distributed.comm.CommClosedError) as exc:
        if name.partition("/")[0] in _gone:
            return "gone"
        raise ExecutorClosedError(f"the dask scheduler at {address} holding this helper cannot be reached ({exc!r})") from exc
    try:
        with Client(address, timeout=5, set_as_default=False) as temporary:
            return temporary.sync(temporary.scheduler.unifex_helper, action=op, name=name, **kwargs)
    except (OSError, TimeoutError, asyncio.TimeoutError) as exc:
        raise ExecutorClosedError(f"the dask scheduler at {address} holding this helper cannot be reached ({exc!r})") from exc


def _holder() -> str:
    """The address of the dask worker running this code, "" elsewhere."""
    try:
        return str(distributed.get_worker().address)
    except ValueError:
        return ""


def _owner() -> str:
    """Who holds an RLock: this thread of this process on this host."""
    return f"{socket.gethostname()}:{os.getpid()}:{threading.get_ident()}"


def _wait_bounds(timeout: float | None) -> tuple[float | None, bool]:
    """A blocking call's timeout bounded by the task deadline, and whether it is the deadline."""
    ctx = _current_worker_waits()
    if ctx is not None:
        ctx.check()
    return _wait.clamp(None if timeout is None or timeout < 0 else timeout)


def _blocking(address: str, op: str, name: str, timeout: float | None, **kwargs: Any) -> Any:
    """Run a blocking operation; on a worker, in slices so a cancelled task stops waiting."""
    bounded, is_deadline = _wait_bounds(timeout)
    ctx = _current_worker_waits()
    if ctx is None:
        reply = _call(address, None, op, name, timeout=bounded, **kwargs)
    else:
        end = None if bounded is None else _monotonic() + bounded
        while True:
            left = None if end is None else max(0.0, end - _monotonic())
            step = 2.0 if left is None else min(left, 2.0)
            reply = _call(address, None, op, name, timeout=step, **kwargs)
            if reply != "timeout" or (left is not None and left <= step):
                break
            ctx.check()
    if reply == "timeout" and is_deadline:
        raise _wait.deadline_passed()
    return reply


class _Helper:
    __slots__ = ("_address", "_name")

    def __init__(self, name: str, address: str) -> None:
        self._name = name
        self._address = address

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._name, self._address))

    def _op(self, op: str, **kwargs: Any) -> Any:
        return _call(self._address, None, op, self._name, **kwargs)

    def __repr__(self) -> str:
        return f"<unifex.dask.{type(self).__name__.removeprefix('Dask')} {self._name} on {self._address}>"


class DaskSemaphore(_Helper):
    """``threading.Semaphore`` held on the scheduler."""

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        if not blocking:
            if timeout is not None:
                raise ValueError("can't specify a timeout for a non-blocking call")
            return bool(self._op("acquire", timeout=0, holder=_holder()) == "ok")
        return bool(_blocking(self._address, "acquire", self._name, timeout, holder=_holder()) == "ok")

    def release(self, n: int = 1) -> None:
        if n < 1:
            raise ValueError("n must be one or more")
        if self._op("release", n=n, holder=_holder()) != "ok":
            self._over_release()

    def _over_release(self) -> None:
        raise ValueError("Semaphore released too many times")

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class DaskBoundedSemaphore(DaskSemaphore):
    """``threading.BoundedSemaphore``: releasing past the initial value raises ``ValueError``."""

    __slots__ = ()


class DaskLock(DaskSemaphore):
    """``threading.Lock`` held on the scheduler: any party may release it."""

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float | None = -1) -> bool:
        if not blocking:
            if timeout not in (-1, None):
                raise ValueError("can't specify a timeout for a non-blocking call")
            return bool(self._op("acquire", timeout=0, holder=_holder()) == "ok")
        return bool(_blocking(self._address, "acquire", self._name, None if timeout is None or timeout < 0 else timeout, holder=_holder()) == "ok")

    def release(self, n: int = 1) -> None:
        if self._op("release", n=1, holder=_holder()) != "ok":
            raise RuntimeError("release unlocked lock")

    def locked(self) -> bool:
        return bool(self._op("value") == 0)


class DaskRLock(_Helper):
    """``threading.RLock`` held on the scheduler, owned by the thread that acquired it."""

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not blocking:
            return bool(self._op("acquire", owner=_owner(), timeout=0, holder=_holder()) == "ok")
        return bool(_blocking(self._address, "acquire", self._name, None if timeout is None or timeout < 0 else timeout, owner=_owner(), holder=_holder()) == "ok")

    def release(self) -> None:
        if self._op("release", owner=_owner()) != "ok":
            raise RuntimeError("cannot release un-acquired lock")

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


class DaskEvent(_Helper):
    """``threading.Event`` held on the scheduler."""

    __slots__ = ()

    def set(self) -> None:
        self._op("set")

    def clear(self) -> None:
        self._op("clear")

    def is_set(self) -> bool:
        return bool(self._op("is_set"))

    def wait(self, timeout: float | None = None) -> bool:
        return bool(_blocking(self._address, "wait", self._name, timeout) == "ok")


class DaskCondition(LockDelegate, _Helper):
    """``threading.Condition`` over a dask ``Lock`` or ``RLock``: waiting releases
    the lock, waits for a notify and re-acquires it in one scheduler operation,
    so no notification is lost between the release and the wait."""

    __slots__ = ("_lock",)

    def __init__(self, name: str, address: str, lock: DaskLock | DaskRLock) -> None:
        super().__init__(name, address)
        self._lock = lock

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._name, self._address, self._lock))

    def _lock_args(self) -> dict[str, Any]:
        rlock = isinstance(self._lock, DaskRLock)
        return {"lock": self._lock._name, "owner": _owner() if rlock else None}

    def _wait_args(self) -> dict[str, Any]:
        return {**self._lock_args(), "holder": _holder()}

    def wait(self, timeout: float | None = None) -> bool:
        token = uuid.uuid4().hex
        reply = _blocking(self._address, "cond_wait", self._name, timeout, token=token, **self._wait_args())
        if reply == "not-owner":
            raise RuntimeError("cannot wait on un-acquired lock")
        return bool(reply == "ok")

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        return wait_for(self, predicate, timeout)

    def notify(self, n: int = 1) -> None:
        if self._op("notify", n=n, **self._lock_args()) == "not-owner":
            raise RuntimeError("cannot notify on un-acquired lock")

    def notify_all(self) -> None:
        self.notify(-1)


class DaskQueue(_Helper):
    """``queue.Queue`` held on the scheduler; items travel pickled."""

    __slots__ = ()

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        data = dpickle.dumps(item)
        if not block:
            reply = self._op("put", item=data, timeout=0)
        else:
            if timeout is not None and timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            reply = _blocking(self._address, "put", self._name, timeout, item=data)
        if reply != "ok":
            raise _queue_module.Full

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not block:
            reply = self._op("get", timeout=0)
        else:
            if timeout is not None and timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            reply = _blocking(self._address, "get", self._name, timeout)
        if not isinstance(reply, bytes):
            raise _queue_module.Empty
        return dpickle.loads(reply)

    def get_nowait(self) -> Any:
        return self.get(False)

    def qsize(self) -> int:
        return int(self._op("qsize"))

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        return bool(self._op("full"))

    def task_done(self) -> None:
        if self._op("task_done") != "ok":
            raise ValueError("task_done() called too many times")

    def join(self) -> None:
        _blocking(self._address, "join", self._name, None)


class DaskDict(_Helper, MutableMapping[Any, Any]):
    """A ``MutableMapping`` held on the scheduler; each method is one atomic
    operation there. Keys and values travel pickled; keys are compared on the
    scheduler, so their types must be importable there."""

    __slots__ = ()

    def __getitem__(self, key: Any) -> Any:
        reply = self._op("getitem", key=dpickle.dumps(key))
        if reply is None:
            raise KeyError(key)
        return dpickle.loads(reply)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._op("setitem", key=dpickle.dumps(key), value=dpickle.dumps(value))

    def __delitem__(self, key: Any) -> None:
        if self._op("delitem", key=dpickle.dumps(key)) != "ok":
            raise KeyError(key)

    def __iter__(self) -> Iterator[Any]:
        return iter([dpickle.loads(k) for k in self._op("keys")])

    def __len__(self) -> int:
        return int(self._op("len"))

    def __contains__(self, key: object) -> bool:
        return bool(self._op("contains", key=dpickle.dumps(key)))

    def get(self, key: Any, default: Any = None) -> Any:
        reply = self._op("getitem", key=dpickle.dumps(key))
        return default if reply is None else dpickle.loads(reply)

    def items(self) -> Any:
        return [(dpickle.loads(k), dpickle.loads(v)) for k, v in self._op("items")]

    def values(self) -> Any:
        return [v for _, v in self.items()]

    def pop(self, key: Any, *default: Any) -> Any:
        if len(default) > 1:
            raise TypeError(f"pop expected at most 2 arguments, got {1 + len(default)}")
        reply = self._op("pop", key=dpickle.dumps(key))
        if reply is None:
            if default:
                return default[0]
            raise KeyError(key)
        return dpickle.loads(reply)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return dpickle.loads(self._op("setdefault", key=dpickle.dumps(key), value=dpickle.dumps(default)))

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        pairs = list(other.items() if hasattr(other, "items") else other) + list(kwargs.items())
        if pairs:
            self._op("update", pairs=[(dpickle.dumps(k), dpickle.dumps(v)) for k, v in pairs])

    def clear(self) -> None:
        self._op("clear")

    def copy(self) -> dict[Any, Any]:
        return dict(self.items())


# -- helpers: the scheduler side ----------------------------------------------------------


class _Sem:
    tag = "sem"

    def __init__(self, value: int, bound: int | None) -> None:
        self.value = value
        self.bound = bound
        #: the worker address (or "" outside workers) of each unit taken, so a
        #: worker's death gives back what its tasks held
        self.holders: list[str] = []
        self.changed = asyncio.Condition()


class _RLockState:
    tag = "rlock"

    def __init__(self) -> None:
        self.owner: str | None = None
        self.owner_worker = ""
        self.count = 0
        self.changed = asyncio.Condition()


class _EventState:
    tag = "event"

    def __init__(self) -> None:
        self.flag = False
        self.changed = asyncio.Condition()


class _CondState:
    tag = "cond"

    def __init__(self) -> None:
        self.waiters: dict[str, asyncio.Future[None]] = {}


class _QueueState:
    tag = "queue"

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: deque[bytes] = deque()
        self.unfinished = 0
        self.changed = asyncio.Condition()


async def _wait_until(cond: asyncio.Condition, ready: Callable[[], bool], timeout: float | None) -> bool:
    """Wait on ``cond`` (held) until ``ready()``; False when ``timeout`` passes."""
    if ready():
        return True
    if timeout is not None and timeout <= 0:
        return False
    try:
        await asyncio.wait_for(cond.wait_for(ready), timeout)
    except (asyncio.TimeoutError, TimeoutError):
        return ready()
    return True


class _HelperService:
    """Every helper's state on the scheduler; one handler, ``unifex_helper``,
    runs each operation alone on the scheduler's event loop."""

    def __init__(self, scheduler: Any) -> None:
        self.objects: dict[str, Any] = {}
        scheduler.handlers["unifex_helper"] = self.handle

    async def handle(self, action: str, name: str, **kw: Any) -> Any:
        if action == "create":
            kind = kw["kind"]
            if kind == "sem":
                self.objects[name] = _Sem(kw["value"], kw["bound"])
            elif kind == "rlock":
                self.objects[name] = _RLockState()
            elif kind == "event":
                self.objects[name] = _EventState()
            elif kind == "cond":
                self.objects[name] = _CondState()
            elif kind == "queue":
                self.objects[name] = _QueueState(kw["maxsize"])
            else:
                self.objects[name] = {}
            return "ok"
        if action == "drop":
            for key in [k for k in self.objects if k.startswith(name)]:
                del self.objects[key]
            return "ok"
        obj = self.objects.get(name)
        if obj is None:
            return "gone"
        method: Callable[..., Any] = getattr(self, f"_{getattr(obj, 'tag', 'dict')}_{action}")
        result = method(obj, **kw)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    # semaphores and locks
    async def _sem_acquire(self, s: _Sem, timeout: float | None, holder: str = "") -> str:
        async with s.changed:
            if not await _wait_until(s.changed, lambda: s.value > 0, timeout):
                return "timeout"
            s.value -= 1
            s.holders.append(holder)
            return "ok"

    async def _sem_release(self, s: _Sem, n: int, holder: str = "") -> str:
        async with s.changed:
            if s.bound is not None and s.value + n > s.bound:
                return "over"
            for _ in range(n):  # any party may release: prefer the releaser's own units
                if holder in s.holders:
                    s.holders.remove(holder)
                elif s.holders:
                    s.holders.pop(0)
            s.value += n
            s.changed.notify(n)
            return "ok"

    def _sem_value(self, s: _Sem) -> int:
        return s.value

    async def _rlock_acquire(self, r: _RLockState, owner: str, timeout: float | None, holder: str = "") -> str:
        async with r.changed:
            if r.owner == owner:
                r.count += 1
                return "ok"
            if not await _wait_until(r.changed, lambda: r.owner is None, timeout):
                return "timeout"
            r.owner, r.count, r.owner_worker = owner, 1, holder
            return "ok"

    async def _rlock_release(self, r: _RLockState, owner: str) -> str:
        async with r.changed:
            if r.owner != owner:
                return "not-owner"
            r.count -= 1
            if r.count == 0:
                r.owner = None
                r.changed.notify()
            return "ok"

    async def worker_gone(self, worker: str) -> None:
        """A worker left the cluster (it died, most often): give back every lock
        and semaphore unit its tasks held, so the other tasks go on. The data
        such a lock protected may be half-updated; the dead task's future says
        WorkerCrashedError."""
        for state in list(self.objects.values()):
            if isinstance(state, _Sem) and worker in state.holders:
                async with state.changed:
                    held = state.holders.count(worker)
                    state.holders = [h for h in state.holders if h != worker]
                    state.value += held
                    state.changed.notify(held)
            elif isinstance(state, _RLockState) and state.owner is not None and state.owner_worker == worker:
                async with state.changed:
                    state.owner, state.count, state.owner_worker = None, 0, ""
                    state.changed.notify()

    # events
    async def _event_set(self, e: _EventState) -> str:
        async with e.changed:
            e.flag = True
            e.changed.notify_all()
        return "ok"

    def _event_clear(self, e: _EventState) -> str:
        e.flag = False
        return "ok"

    def _event_is_set(self, e: _EventState) -> bool:
        return e.flag

    async def _event_wait(self, e: _EventState, timeout: float | None) -> str:
        async with e.changed:
            return "ok" if await _wait_until(e.changed, lambda: e.flag, timeout) else "timeout"

    # conditions: the lock lives here too, so release-wait-reacquire is one step
    def _owns(self, lock: str, owner: str | None) -> bool:
        state = self.objects.get(lock)
        if isinstance(state, _RLockState):
            return state.owner == owner
        return isinstance(state, _Sem) and state.value == 0

    async def _cond_cond_wait(self, c: _CondState, token: str, lock: str, owner: str | None, timeout: float | None, holder: str = "") -> str:
        if not self._owns(lock, owner):
            return "not-owner"
        state = self.objects[lock]
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        c.waiters[token] = waiter
        saved = 1
        if isinstance(state, _RLockState):
            saved = state.count
            async with state.changed:
                state.owner, state.count = None, 0
                state.changed.notify()
        else:
            await self._sem_release(state, 1, holder)
        notified = True
        try:
            if timeout is None:
                await waiter
            else:
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            notified = waiter.done()
        finally:
            c.waiters.pop(token, None)
        if isinstance(state, _RLockState):
            await self._rlock_acquire(state, owner or "", None, holder)
            state.count = saved
        else:
            await self._sem_acquire(state, None, holder)
        return "ok" if notified else "timeout"

    def _cond_notify(self, c: _CondState, n: int, lock: str, owner: str | None) -> str:
        if not self._owns(lock, owner):
            return "not-owner"
        woken = 0
        for token in list(c.waiters):
            if n >= 0 and woken >= n:
                break
            waiter = c.waiters.pop(token)
            if not waiter.done():
                waiter.set_result(None)
                woken += 1
        return "ok"

    # queues
    async def _queue_put(self, q: _QueueState, item: bytes, timeout: float | None) -> str:
        async with q.changed:
            if not await _wait_until(q.changed, lambda: q.maxsize <= 0 or len(q.items) < q.maxsize, timeout):
                return "timeout"
            q.items.append(item)
            q.unfinished += 1
            q.changed.notify_all()
            return "ok"

    async def _queue_get(self, q: _QueueState, timeout: float | None) -> Any:
        async with q.changed:
            if not await _wait_until(q.changed, lambda: bool(q.items), timeout):
                return "timeout"
            item = q.items.popleft()
            q.changed.notify_all()
            return item

    def _queue_qsize(self, q: _QueueState) -> int:
        return len(q.items)

    def _queue_full(self, q: _QueueState) -> bool:
        return 0 < q.maxsize <= len(q.items)

    async def _queue_task_done(self, q: _QueueState) -> str:
        async with q.changed:
            if q.unfinished <= 0:
                return "too-many"
            q.unfinished -= 1
            q.changed.notify_all()
            return "ok"

    async def _queue_join(self, q: _QueueState, timeout: float | None) -> str:
        async with q.changed:
            return "ok" if await _wait_until(q.changed, lambda: q.unfinished == 0, timeout) else "timeout"

    # dicts: keys unpickled here so that equal keys meet; values stay opaque bytes
    def _dict_getitem(self, d: dict[Any, tuple[bytes, bytes]], key: bytes) -> bytes | None:
        entry = d.get(dpickle.loads(key))
        return None if entry is None else entry[1]

    def _dict_setitem(self, d: dict[Any, tuple[bytes, bytes]], key: bytes, value: bytes) -> str:
        d[dpickle.loads(key)] = (key, value)
        return "ok"

    def _dict_delitem(self, d: dict[Any, tuple[bytes, bytes]], key: bytes) -> str:
        return "ok" if d.pop(dpickle.loads(key), None) is not None else "missing"

    def _dict_pop(self, d: dict[Any, tuple[bytes, bytes]], key: bytes) -> bytes | None:
        entry = d.pop(dpickle.loads(key), None)
        return None if entry is None else entry[1]

    def _dict_setdefault(self, d: dict[Any, tuple[bytes, bytes]], key: bytes, value: bytes) -> bytes:
        return d.setdefault(dpickle.loads(key), (key, value))[1]

    def _dict_update(self, d: dict[Any, tuple[bytes, bytes]], pairs: list[tuple[bytes, bytes]]) -> str:
        for key, value in pairs:
            d[dpickle.loads(key)] = (key, value)
        return "ok"

    def _dict_contains(self, d: dict[Any, tuple[bytes, bytes]], key: bytes) -> bool:
        return dpickle.loads(key) in d

    def _dict_keys(self, d: dict[Any, tuple[bytes, bytes]]) -> list[bytes]:
        return [k for k, _ in d.values()]

    def _dict_items(self, d: dict[Any, tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        return list(d.values())

    def _dict_len(self, d: dict[Any, tuple[bytes, bytes]]) -> int:
        return len(d)

    def _dict_clear(self, d: dict[Any, tuple[bytes, bytes]]) -> str:
        d.clear()
        return "ok"


class _HelperPlugin(SchedulerPlugin):  # type: ignore[misc]
    """Installs :class:`_HelperService` on the scheduler once."""

    idempotent = True
    name = _PLUGIN_NAME

    async def start(self, scheduler: Any) -> None:
        if "unifex_helper" not in scheduler.handlers:
            scheduler.extensions["unifex_helpers"] = _HelperService(scheduler)

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> Any:
        service = scheduler.extensions.get("unifex_helpers")
        return service.worker_gone(worker) if service is not None else None
