"""What runs on a dask worker: a task's unpickling, its wait context (deadline
and cancellation checks) and the pickled ``(ok, value, traceback)`` it returns.

Every line here runs inside a dask worker process (``dpickle`` also in the
client and on the scheduler: it is the wire format of every value we send).
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import socket
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any, TypeVar

import distributed as _distributed

from ... import _remote, _wait
from ..._base import describe_call, terminated_error
from ..._errors import SerializationError
from ..._share import Shared
from ..._worker import WorkerIO, WorkerLife, WorkerSetup, bind_state, format_bytes, rss_of, unbind_state

__all__ = ["WHERE", "DaskShared", "HeldOutcome", "Ref", "dpickle", "end_lives", "run_batch", "run_remote"]

#: where a remote traceback comes from, for its text
WHERE = "a dask worker"

T = TypeVar("T")

#: distributed is only partly annotated; its API is used here as dynamic
distributed: Any = _distributed

_monotonic = time.monotonic


class _Pickle:
    """The wire format of every value the ``dask`` kind sends: :func:`unifex._remote.dumps`
    (pickle, cloudpickle where pickle cannot), and by value whenever the data
    names ``__main__``, which a worker cannot import."""

    @staticmethod
    def dumps(value: Any) -> bytes:
        data = _remote.dumps(value)
        if b"__main__" in data:
            return _remote.dumps(value, by_value=True)
        return data

    loads = staticmethod(_remote.loads)


dpickle = _Pickle


def describe(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if fn is run_batch:
        inner = getattr(args[0], "__qualname__", None) or repr(args[0])
        return f"map({inner}) over a batch of {len(args[1])} inputs"
    return describe_call(fn, args, kwargs)


def run_batch(fn: Callable[..., Any], items: list[Any], flat: bool, exact_from: int | None, mark: str | None) -> tuple[list[Any], BaseException | None]:
    """Run a ``map`` batch: ``fn(item)`` for each item when ``flat``, else
    ``fn(*item)``; stop at the first exception of any type (``SystemExit``
    included, so it is raised at its own position) and return the results
    before it with it.

    From item ``exact_from`` on, each item's index is recorded on the scheduler
    (under ``mark``) before it runs: a batch whose worker died runs again this
    way, so that a crash that recurs is blamed on its item."""
    results: list[Any] = []
    append = results.append
    exact = len(items) if exact_from is None or mark is None else exact_from
    head = items if exact >= len(items) else items[:exact]
    try:
        if flat:
            for item in head:
                append(fn(item))
        else:
            for args in head:
                append(fn(*args))
        for i in range(exact, len(items)):
            _mark(mark, i)
            append(fn(items[i]) if flat else fn(*items[i]))
    except BaseException as exc:  # a task's exception, whatever its type, is its result
        return results, exc
    return results, None


def _mark(name: str | None, index: int) -> None:
    worker = distributed.get_worker()
    distributed.utils.sync(worker.loop, worker.scheduler.unifex_helper, action="mark", name=name, index=index)


def _strip(exc: BaseException | None) -> None:
    """Drop the tracebacks of an exception and of its chain: their text travels
    apart, and distributed installs tblib, which pickles traceback frames
    recursively (a ``RecursionError``'s thousand frames fail to pickle)."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        exc.__traceback__ = None
        if exc.__cause__ is not None and id(exc.__cause__) not in seen:
            _strip(exc.__cause__)
        exc = exc.__context__


def _dumps_outcome(ok: bool, value: Any, tb: str | None, what: str) -> bytes:
    if not ok:
        _strip(value)
    elif type(value) is tuple and len(value) == 2 and isinstance(value[1], BaseException):
        _strip(value[1])  # a map batch that stopped at an error
    try:
        return dpickle.dumps((ok, value, tb))
    except Exception as exc:
        part = "result" if ok else f"exception {type(value).__name__}: {value}"
        err = SerializationError(f"the {part} of {what} could not be serialized to return from the dask worker: {exc!r}; return plain picklable values")
        return dpickle.dumps((False, err, tb))


class HeldOutcome:
    """The pickled outcome of a task whose value is at least the executor's
    ``zero_copy_threshold``: dask keeps it in the worker's memory under the
    task's key, and the client, seeing this type in the scheduler's report,
    does not gather it until the caller asks for the result. The value's large
    buffers (numpy arrays...) are pickled out of band (protocol 5) and travel
    as dask frames of their own: neither side copies them into a pickle."""

    __slots__ = ("buffers", "head")

    def __init__(self, head: Any, buffers: Any = ()) -> None:
        self.head = head
        self.buffers = buffers

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        if isinstance(protocol, int) and protocol >= 5:
            return (HeldOutcome, (pickle.PickleBuffer(self.head), [pickle.PickleBuffer(b) for b in self.buffers]))
        return (HeldOutcome, (bytes(self.head), [bytes(b) for b in self.buffers]))

    def loads(self) -> Any:
        return pickle.loads(self.head, buffers=self.buffers)

    def __sizeof__(self) -> int:  # dask's memory accounting
        return object.__sizeof__(self) + memoryview(self.head).nbytes + sum(memoryview(b).nbytes for b in self.buffers)


def _dumps_value(outcome: tuple[bool, Any, str | None], hold: int) -> bytes | HeldOutcome | None:
    """``outcome`` pickled with its large buffers out of band: the pickle alone
    when it is below ``hold`` bytes in all and has no such buffers, a
    :class:`HeldOutcome` when it is at least ``hold``; None when it needs the
    general path (cloudpickle, ``__main__`` by value, buffers of a small value)."""
    buffers: list[pickle.PickleBuffer] = []
    try:
        head = pickle.dumps(outcome, _remote.PROTOCOL, buffer_callback=buffers.append)
        if b"__main__" in head:
            return None
        raw = [b.raw() for b in buffers]
    except Exception:
        return None
    size = len(head) + sum(r.nbytes for r in raw)
    if size >= hold:
        return HeldOutcome(head, raw)
    return None if raw else head


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


def current_worker_waits() -> _WorkerWaits | None:
    ctx = _wait.current()
    return ctx if isinstance(ctx, _WorkerWaits) else None


class Ref:
    """In a task's payload, its argument number ``index`` that was too big to
    embed: dask passes it to :func:`run_remote` as a dependency."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:
        return (Ref, (self.index,))


def _put_back(args: tuple[Any, ...], kwargs: dict[str, Any], big: tuple[bytes, ...]) -> tuple[tuple[Any, ...], dict[str, Any]]:
    args = tuple(dpickle.loads(big[a.index]) if isinstance(a, Ref) else a for a in args)
    return args, {k: dpickle.loads(big[v.index]) if isinstance(v, Ref) else v for k, v in kwargs.items()}


class DaskShared(Shared[T]):
    """``Executor.share(obj)`` on dask: the object is scattered to every worker
    (``broadcast=True``); the handle travels as its key and each worker reads
    the object from its own memory, where it was unpickled once on arrival. A
    worker that joined later fetches it once from a peer."""

    __slots__ = ("_dfut", "_key", "_local")

    def __init__(self, value: T, key: str, dfut: Any = None) -> None:
        super().__init__(value)
        self._key = key
        self._dfut = dfut
        self._local = dfut is not None  # made here: the value is at hand

    @property
    def value(self) -> T:
        if self._local:
            return self._value
        return _resolve_shared(self._key)  # type: ignore[no-any-return]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_shared_handle, (self._key,))

    def _release(self) -> None:
        dfut, self._dfut = self._dfut, None
        if dfut is not None:
            with contextlib.suppress(Exception):
                dfut.release()

    def __repr__(self) -> str:
        return f"<unifex.Shared on dask {self._key}>"


def _shared_handle(key: str) -> DaskShared[Any]:
    return DaskShared(None, key)


#: key -> the shared object, unpickled once in this worker process
_shared_cache: dict[str, Any] = {}
_shared_lock = threading.Lock()


def _resolve_shared(key: str) -> Any:
    try:
        return _shared_cache[key]
    except KeyError:
        pass
    with _shared_lock:  # one unpickle per process, however many threads ask at once
        if key in _shared_cache:
            return _shared_cache[key]
        worker = distributed.get_worker()
        data = worker.data.get(key) if key in worker.data else None
        if data is None:  # a worker that joined after the broadcast: fetch it from a peer
            data = distributed.Future(key, client=distributed.get_client()).result()
        value = dpickle.loads(data)
        for old in [k for k in _shared_cache if k not in worker.data]:  # handles whose executor closed
            del _shared_cache[old]
        _shared_cache[key] = value
        return value


def run_remote(payload: bytes, timeout: float | None, *big: Any, life_spec: tuple[Any, ...] | None = None, hold: int | None = None) -> bytes | HeldOutcome:
    """Run one task on a dask worker: unpickle, run with the task's deadline and
    cancellation check in place, and return ``(ok, value, traceback)`` pickled.
    ``big`` holds the arguments too large to embed in ``payload``; ``life_spec``
    names the executor's worker options (see :func:`_enter_life`). A value
    whose pickle is at least ``hold`` bytes comes back as a :class:`HeldOutcome`,
    which stays on the cluster until the client asks for it."""
    try:
        fn, args, kwargs = dpickle.loads(payload)
        if big:
            args, kwargs = _put_back(args, kwargs, big)
    except Exception as exc:
        err = SerializationError(
            f"the task could not be deserialized on the dask worker {socket.gethostname()} (pid {os.getpid()}): {exc!r}; "
            "every module the function needs, unifex included, must be importable there"
        )
        return _dumps_outcome(False, err, traceback.format_exc(), "the task")
    key = ""
    with contextlib.suppress(Exception):
        key = str(distributed.get_worker().get_current_task())
    life, previous, io = _enter_life(life_spec, fn)
    if life is not None and life.init_error is not None:
        _leave_life(life, previous, io, life_spec)
        return _dumps_outcome(False, life.init_error, None, describe(fn, args, kwargs))
    ctx = _WorkerWaits(key)
    _wait.push_context(ctx)
    if timeout is not None:
        _wait.set_task_deadline(_monotonic() + timeout)
    error: BaseException | None = None
    tb: str | None = None
    try:
        value = fn(*args, **kwargs)
    except BaseException as exc:  # SystemExit and KeyboardInterrupt of a task are its result too
        error, tb = exc, traceback.format_exc()
        if io is not None:
            io.note(exc)
    finally:
        _wait.set_task_deadline(None)
        _wait.remove_context(ctx)
        _leave_life(life, previous, io, life_spec)
    # pickled outside the except block: a RecursionError pickles only there
    if error is not None:
        return _dumps_outcome(False, error, tb, describe(fn, args, kwargs))
    if fn is run_batch:
        if value[1] is not None:  # a map batch stopped at an error: keep its traceback too
            tb = _remote.traceback_text(value[1])
        return _dumps_outcome(True, value, tb, describe(fn, args, kwargs))
    if hold is not None:  # only a value is held: an error always comes back at once
        quick = _dumps_value((True, value, tb), hold)
        if quick is not None:
            return quick
    try:
        outcome = dpickle.dumps((True, value, tb))
    except Exception:
        return _dumps_outcome(True, value, tb, describe(fn, args, kwargs))  # says what would not pickle
    if hold is not None and len(outcome) >= hold:
        return HeldOutcome(outcome)
    return outcome


# -- worker options on a dask worker (docs/lifecycle.md) ------------------------------
#
# A "worker" is a dask worker: one worker_state() per executor per dask worker,
# shared by its threads; the initializer runs at the first task of the executor
# there (under a lock: the other threads wait for it). Recycling renews the life
# in place (finalizer, fresh state, initializer again): the dask worker process
# is dask's to restart, and on a shared cluster other clients' tasks run there.

_lives_lock = threading.Lock()
_lives: dict[tuple[str, str], WorkerLife] = {}  # (executor id, worker address) -> life
_io: WorkerIO | None = None


def _worker_address() -> str:
    try:
        return str(distributed.get_worker().address)
    except ValueError:
        return ""


def _logs(topic: str) -> Any:
    def send(record: dict[str, Any]) -> None:
        distributed.get_worker().log_event(topic, record)

    return send


def _enter_life(life_spec: tuple[Any, ...] | None, fn: Any) -> tuple[WorkerLife | None, Any, WorkerIO | None]:
    """Bind this executor's state on this dask worker to the task thread (made,
    and its initializer run, at the first task), and start the task's output
    tail and log forwarding."""
    global _io
    if life_spec is None:
        return None, None, None
    ex_id, setup_payload, topic, _level, _memory = life_spec
    key = (ex_id, _worker_address())
    with _lives_lock:
        if _io is None:
            _io = WorkerIO(None, None, own_root=False)
        life = _lives.get(key)
        if life is None:
            setup = dpickle.loads(setup_payload) if setup_payload is not None else WorkerSetup()
            life = _lives[key] = WorkerLife(setup, "dask")
            life.begin()  # the initializer, with the state bound to this thread
            unbind_state(life.previous)
        life.done += 1
    previous = bind_state(life.state)
    _io.begin(fn, _logs(topic) if topic else None)
    return life, previous, _io


def _leave_life(life: WorkerLife | None, previous: Any, io: WorkerIO | None, life_spec: tuple[Any, ...] | None) -> None:
    if life is None or life_spec is None:
        return
    unbind_state(previous)
    ex_id, _setup, _topic, _level, memory = life_spec
    why = None
    if life.spent:
        why = f"it ran max_tasks_per_worker={life.setup.max_tasks} tasks"
    elif memory is not None:
        rss = rss_of(os.getpid())
        if rss is not None and rss > memory:
            why = f"its process uses {format_bytes(rss)}, more than max_memory_per_worker={format_bytes(memory)}"
    if why is not None:
        key = (ex_id, _worker_address())
        with _lives_lock:
            if _lives.get(key) is life:
                del _lives[key]
            else:
                why = None
        if why is not None:
            logging.getLogger("unifex").warning("unifex: dask worker %s (pid %d): %s; its unifex worker is replaced", key[1], os.getpid(), why)
            _end(life)
    if io is not None:
        io.end()


def _end(life: WorkerLife) -> None:
    life.previous = bind_state(life.state)
    life.end()
    import gc

    gc.collect()  # what the state held goes now


def end_lives(ex_id: str, finalize: bool = True) -> int:
    """Run on every dask worker when an executor closes: its workers' finalizers
    run and their states go. Returns how many ended."""
    with _lives_lock:
        ended = [life for (eid, _), life in list(_lives.items()) if eid == ex_id]
        for key in [k for k in _lives if k[0] == ex_id]:
            del _lives[key]
    for life in ended:
        if finalize:
            _end(life)
    return len(ended)
