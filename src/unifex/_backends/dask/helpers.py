"""The client side of the ``dask`` kind's shared-state helpers (``Lock``,
``RLock``, ``Semaphore``, ``BoundedSemaphore``, ``Event``, ``Condition``,
``Queue``, ``dict``): small picklable handles whose every operation is one
round trip to the helper service on the scheduler (``scheduler.py``).

They run wherever a handle is used: in the submitting process, through the
executor's client, and inside tasks on dask workers, through the worker's own
connection to the scheduler.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue as _queue_module
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterator, MutableMapping
from typing import Any

import distributed as _distributed

from ..._errors import ExecutorClosedError
from ..._helpers import (
    Held,
    bounded_wait,
    lock_timeout,
    queue_maxsize,
    queue_timeout,
    release_count,
    semaphore_timeout,
    wait_timeout,
)
from ..._shared import LockDelegate, wait_for
from .scheduler import ACK_OP
from .worker import current_worker_waits, dpickle

__all__ = [
    "DaskBoundedSemaphore",
    "DaskCondition",
    "DaskDict",
    "DaskEvent",
    "DaskLock",
    "DaskQueue",
    "DaskRLock",
    "DaskSemaphore",
    "clients",
    "gone",
]

#: distributed is only partly annotated; its API is used here as dynamic
distributed: Any = _distributed
Client: Any = _distributed.Client

_monotonic = time.monotonic

#: scheduler address -> the clients of live executors there, for helpers used in this process
clients: dict[str, weakref.WeakSet[Any]] = {}
#: ids of executors whose embedded cluster was closed: their helpers need no round trip to learn it
gone: set[str] = set()


def _client_for(address: str) -> Any:
    for client in list(clients.get(address, ())):
        if client.status == "running":
            return client
    return None


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


def call(address: str, client: Any, op: str, name: str, **kwargs: Any) -> Any:
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
    if name.partition("/")[0] in gone:
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
        if name.partition("/")[0] in gone:
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


def _blocking(address: str, op: str, name: str, seconds: float | None, **kwargs: Any) -> Any:
    """Run a blocking operation for at most ``seconds`` (None: no limit, as
    :mod:`unifex._helpers.args` returns it), bounded by the task deadline
    (:func:`unifex._helpers.bounded_wait`); "timeout" when time ran out."""
    ctx = current_worker_waits()
    if ctx is not None:
        ctx.check()
    replies: list[Any] = []

    def attempt(limit: float | None) -> bool:
        replies.append(_call_within(address, op, name, limit, ctx, **kwargs))
        return bool(replies[-1] != "timeout")

    bounded_wait(attempt, seconds)
    return replies[-1]


def _call_within(address: str, op: str, name: str, limit: float | None, ctx: Any, **kwargs: Any) -> Any:
    """One blocking operation; on a worker, in slices so a cancelled task stops waiting."""
    if ctx is None:
        return call(address, None, op, name, timeout=limit, **kwargs)
    end = None if limit is None else _monotonic() + limit
    while True:
        left = None if end is None else max(0.0, end - _monotonic())
        step = 2.0 if left is None else min(left, 2.0)
        reply = call(address, None, op, name, timeout=step, **kwargs)
        if reply != "timeout" or (left is not None and left <= step):
            return reply
        ctx.check()


def _acknowledge(name: str, token: str) -> None:
    """Tell the scheduler, without waiting, that this task received its item."""
    with contextlib.suppress(Exception):
        worker = distributed.get_worker()
        worker.loop.add_callback(worker.batched_send, {"op": ACK_OP, "name": name, "token": token})


class _Helper:
    __slots__ = ("__weakref__", "_address", "_name")

    def __init__(self, name: str, address: str) -> None:
        self._name = name
        self._address = address

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._name, self._address))

    def _op(self, op: str, **kwargs: Any) -> Any:
        return call(self._address, None, op, self._name, **kwargs)

    def _describe(self) -> str:
        return f"{self._name} on {self._address}"

    def __repr__(self) -> str:
        return f"<unifex_dask.{type(self).__name__.removeprefix('Dask')} {self._describe()} at {id(self):#x}>"


class DaskSemaphore(Held, _Helper):
    """``threading.Semaphore`` held on the scheduler."""

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return self._acquire(semaphore_timeout(blocking, timeout))

    def _acquire(self, seconds: float | None) -> bool:
        if seconds == 0.0:
            return bool(self._op("acquire", timeout=0, holder=_holder()) == "ok")
        return bool(_blocking(self._address, "acquire", self._name, seconds, holder=_holder()) == "ok")

    def release(self, n: int = 1) -> None:
        if self._op("release", n=release_count(n), holder=_holder()) != "ok":
            self._over_release()

    def _over_release(self) -> None:
        raise ValueError("Semaphore released too many times")

    def __repr__(self) -> str:
        return f"<unifex_dask.Semaphore at {id(self):#x} {self._describe()}: value={self._op('value')}>"


class DaskBoundedSemaphore(DaskSemaphore):
    """``threading.BoundedSemaphore``: releasing past the initial value raises ``ValueError``."""

    __slots__ = ()

    def __repr__(self) -> str:
        value, bound = self._op("value"), self._op("bound")
        return f"<unifex_dask.BoundedSemaphore at {id(self):#x} {self._describe()}: value={value}/{bound}>"


class DaskLock(DaskSemaphore):
    """``threading.Lock`` held on the scheduler: any party may release it."""

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:  # type: ignore[override]
        return self._acquire(lock_timeout(blocking, timeout))

    def release(self, n: int = 1) -> None:
        if self._op("release", n=1, holder=_holder()) != "ok":
            raise RuntimeError("release unlocked lock")

    def locked(self) -> bool:
        return bool(self._op("value") == 0)

    def __repr__(self) -> str:
        return f"<{'locked' if self.locked() else 'unlocked'} unifex_dask.Lock object {self._describe()} at {id(self):#x}>"


class DaskRLock(Held, _Helper):
    """``threading.RLock`` held on the scheduler, owned by the thread that acquired it."""

    __slots__ = ()

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        seconds = lock_timeout(blocking, timeout)
        if seconds == 0.0:
            return bool(self._op("acquire", owner=_owner(), timeout=0, holder=_holder()) == "ok")
        return bool(_blocking(self._address, "acquire", self._name, seconds, owner=_owner(), holder=_holder()) == "ok")

    def release(self) -> None:
        if self._op("release", owner=_owner()) != "ok":
            raise RuntimeError("cannot release un-acquired lock")

    # threading.RLock's private protocol
    def _recursion_count(self) -> int:
        return int(self._op("count", owner=_owner()))

    def _is_owned(self) -> bool:
        return self._recursion_count() > 0

    def _release_save(self) -> int:
        count = self._recursion_count()
        if not count:
            raise RuntimeError("cannot release un-acquired lock")
        for _ in range(count):
            self.release()
        return count

    def _acquire_restore(self, count: int) -> None:
        for _ in range(count):
            self.acquire()

    def __repr__(self) -> str:
        count = self._recursion_count()
        return f"<{'locked' if count else 'unlocked'} unifex_dask.RLock object count={count} {self._describe()} at {id(self):#x}>"


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
        return bool(_blocking(self._address, "wait", self._name, wait_timeout(timeout)) == "ok")

    def __repr__(self) -> str:
        return f"<unifex_dask.Event at {id(self):#x} {self._describe()}: {'set' if self.is_set() else 'unset'}>"


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
        seconds = wait_timeout(timeout)
        token = uuid.uuid4().hex
        reply = _blocking(self._address, "cond_wait", self._name, seconds, token=token, **self._wait_args())
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


class Queue(_Helper):
    """``queue.Queue`` held on the scheduler; items travel pickled. (Named
    ``Queue`` as the stdlib's, which code keyed by class name expects.)"""

    __slots__ = ()

    @property
    def maxsize(self) -> int:
        return int(self._op("maxsize"))

    @maxsize.setter
    def maxsize(self, maxsize: int) -> None:
        self._op("set_maxsize", maxsize=queue_maxsize(maxsize))

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        seconds = queue_timeout(block, timeout)
        data = dpickle.dumps(item)
        reply = self._op("put", item=data, timeout=0) if seconds == 0.0 else _blocking(self._address, "put", self._name, seconds, item=data)
        if reply != "ok":
            raise _queue_module.Full

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        seconds = queue_timeout(block, timeout)
        # inside a task, the scheduler keeps the item until we acknowledge it,
        # so that a worker killed in get() does not take the next item with it
        holder = _holder()
        token = uuid.uuid4().hex if holder else ""
        if seconds == 0.0:
            reply = self._op("get", timeout=0, holder=holder, token=token)
        else:
            reply = _blocking(self._address, "get", self._name, seconds, holder=holder, token=token)
        if not isinstance(reply, bytes):
            raise _queue_module.Empty
        if holder:
            _acknowledge(self._name, token)
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


DaskQueue = Queue


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

