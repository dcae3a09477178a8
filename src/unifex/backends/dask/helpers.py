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

from ... import _wait
from ..._errors import ExecutorClosedError
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
    "check_count",
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


def check_count(n: object) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"semaphore initial value must be an int >= 0, not {n!r}")


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


def _wait_bounds(timeout: float | None) -> tuple[float | None, bool]:
    """A blocking call's timeout bounded by the task deadline, and whether it is the deadline."""
    ctx = current_worker_waits()
    if ctx is not None:
        ctx.check()
    return _wait.clamp(None if timeout is None or timeout < 0 else timeout)


def _blocking(address: str, op: str, name: str, timeout: float | None, **kwargs: Any) -> Any:
    """Run a blocking operation; on a worker, in slices so a cancelled task stops waiting."""
    bounded, is_deadline = _wait_bounds(timeout)
    ctx = current_worker_waits()
    if ctx is None:
        reply = call(address, None, op, name, timeout=bounded, **kwargs)
    else:
        end = None if bounded is None else _monotonic() + bounded
        while True:
            left = None if end is None else max(0.0, end - _monotonic())
            step = 2.0 if left is None else min(left, 2.0)
            reply = call(address, None, op, name, timeout=step, **kwargs)
            if reply != "timeout" or (left is not None and left <= step):
                break
            ctx.check()
    if reply == "timeout" and is_deadline:
        raise _wait.deadline_passed()
    return reply


def _acknowledge(name: str, token: str) -> None:
    """Tell the scheduler, without waiting, that this task received its item."""
    with contextlib.suppress(Exception):
        worker = distributed.get_worker()
        worker.loop.add_callback(worker.batched_send, {"op": ACK_OP, "name": name, "token": token})


class _Helper:
    __slots__ = ("_address", "_name")

    def __init__(self, name: str, address: str) -> None:
        self._name = name
        self._address = address

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._name, self._address))

    def _op(self, op: str, **kwargs: Any) -> Any:
        return call(self._address, None, op, self._name, **kwargs)

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
        # inside a task, the scheduler keeps the item until we acknowledge it,
        # so that a worker killed in get() does not take the next item with it
        holder = _holder()
        token = uuid.uuid4().hex if holder else ""
        if not block:
            reply = self._op("get", timeout=0, holder=holder, token=token)
        else:
            if timeout is not None and timeout < 0:
                raise ValueError("'timeout' must be a non-negative number")
            reply = _blocking(self._address, "get", self._name, timeout, holder=holder, token=token)
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

