"""Task functions the conformance suite ships to workers.

They live in the installed package so that every worker process, whatever its
start method, and every dask worker can import them by reference.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import MutableMapping
from typing import Any

import unifex

__all__ = [
    "add",
    "echo",
    "fail",
    "getpid",
    "identity",
    "incr_locked",
    "incr_unlocked",
    "raise_at",
    "set_event",
    "shared_value",
    "sleep_return",
    "square",
    "wait_event",
    "wait_event_then",
]


class TaskError(Exception):
    """The error the conformance tasks raise on purpose."""


def identity(x: Any) -> Any:
    return x


def square(x: int) -> int:
    return x * x


def add(a: int, b: int = 0, *more: int, c: int = 0) -> int:
    return a + b + sum(more) + c


def echo(*args: Any, **kwargs: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    return args, kwargs


def fail(message: str = "boom") -> None:
    raise TaskError(message)


def raise_at(x: int, bad: int) -> int:
    """``x * x``, but raise ``TaskError`` for ``x == bad``."""
    if x == bad:
        raise TaskError(f"bad input {x}")
    return x * x


def getpid(_: Any = None) -> int:
    return os.getpid()


def thread_ident(_: Any = None) -> int:
    return threading.get_ident()


def sleep_return(seconds: float, value: Any = None) -> Any:
    unifex.sleep(seconds)
    return value


def shared_value(handle: Any) -> Any:
    """The value of an ``Executor.share`` handle, as a task sees it."""
    return handle.value


def set_event(event: Any, value: Any = None) -> Any:
    event.set()
    return value


def wait_event(event: Any, timeout: float = 30.0) -> bool:
    """Wait on a helper Event; return whether it was set in time."""
    return bool(event.wait(timeout))


def wait_event_then(event: Any, value: Any, timeout: float = 30.0) -> Any:
    if not event.wait(timeout):
        raise TaskError("the event was not set in time")
    return value


def signal_and_wait(started: Any, release: Any, value: Any = None, timeout: float = 30.0) -> Any:
    """Set ``started``, then wait for ``release`` (for tests that need a running task)."""
    started.set()
    if not release.wait(timeout):
        raise TaskError("the release event was not set in time")
    return value


def signal_and_sleep(started: Any, seconds: float, value: Any = None) -> Any:
    started.set()
    unifex.sleep(seconds)
    return value


def incr_locked(lock: Any, shared: MutableMapping[str, int], key: str, times: int) -> int:
    """Read-modify-write ``shared[key]`` under ``lock``, with a yield point inside
    the critical section so that a missing lock would lose updates."""
    for _ in range(times):
        with lock:
            value = shared[key]
            unifex.sleep(0)
            shared[key] = value + 1
    return times


def incr_unlocked(shared: MutableMapping[str, int], key: str, times: int) -> int:
    for _ in range(times):
        value = shared[key]
        unifex.sleep(0)
        shared[key] = value + 1
    return times


def queue_put_range(q: Any, n: int, timeout: float = 30.0) -> int:
    for i in range(n):
        q.put(i, timeout=timeout)
    return n


def queue_get_n(q: Any, n: int, timeout: float = 30.0) -> list[Any]:
    out = []
    for _ in range(n):
        out.append(q.get(timeout=timeout))
        q.task_done()
    return out


def semaphore_probe(sem: Any, counter: Any, lock: Any, hold: float) -> int:
    """Hold ``sem`` for ``hold`` seconds and record the most holders seen at once."""
    with sem:
        with lock:
            counter["now"] += 1
            counter["max"] = max(counter["max"], counter["now"])
        unifex.sleep(hold)
        with lock:
            counter["now"] -= 1
    return 1


def condition_wait(cond: Any, shared: MutableMapping[str, int], key: str, timeout: float = 30.0) -> bool:
    """Wait under ``cond`` until ``shared[key]`` is true."""
    with cond:
        return bool(cond.wait_for(lambda: shared[key], timeout))


def rlock_reenter(rlock: Any, depth: int) -> int:
    if depth == 0:
        return 0
    with rlock:
        return 1 + rlock_reenter(rlock, depth - 1)


def dict_put(shared: MutableMapping[Any, Any], key: Any, value: Any) -> Any:
    shared[key] = value
    return key


def wait_pair(pair: tuple[Any, Any]) -> Any:
    """``wait_event_then(event, value)`` taking one ``(event, value)`` argument."""
    event, value = pair
    return wait_event_then(event, value)


def count_then_wait(args: tuple[Any, Any, Any]) -> int:
    """Count this task as started in ``started["n"]``, then wait for ``release``."""
    started, lock, release = args
    with lock:
        started["n"] += 1
    if not release.wait(30):
        raise TaskError("not released")
    return 1


def sleep_then_touch(started: Any, seconds: float, path: str) -> None:
    """Set ``started``, sleep, then create the file ``path`` (a side effect a
    stopped task never reaches)."""
    started.set()
    unifex.sleep(seconds)
    with open(path, "w") as f:
        f.write("finished")


def sleep_steps_then_touch(steps: int, step: float, path: str) -> int:
    """Sleep ``steps`` times ``step`` seconds with ``unifex.sleep``, then create
    ``path``. A timed-out task stops at one of those sleeps on every kind."""
    for _ in range(steps):
        unifex.sleep(step)
    with open(path, "w") as f:
        f.write("finished")
    return steps


def wait_event_in_task(event: Any) -> str:
    """Block on ``event.wait()`` with no timeout; report how the wait ended."""
    try:
        event.wait()
    except unifex.TaskTimeoutError:
        return "timed out inside"
    return "set"


def condition_turn(cond: Any, shared: MutableMapping[str, int], timeout: float = 30.0) -> bool:
    """Register in ``shared["waiting"]``, then wait under ``cond`` until
    ``shared["go"]`` exceeds ``shared["woken"]``; take a turn and return True
    (False if ``timeout`` passes first)."""
    import time

    end = time.monotonic() + timeout
    with cond:
        shared["waiting"] += 1
        while not shared["go"] > shared["woken"]:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return False
            cond.wait(remaining)
        shared["woken"] += 1
        return True


def condition_arrive(cond: Any, state: MutableMapping[str, Any], timeout: float = 30.0) -> bool:
    """Count this task in ``state["waiting"]`` and ``notify_all()`` the caller,
    then wait under ``cond`` until ``state["go"]``."""
    import time

    end = time.monotonic() + timeout
    with cond:
        state["waiting"] += 1
        cond.notify_all()
        while not state["go"]:
            remaining = end - time.monotonic()
            if remaining <= 0:
                return False
            cond.wait(remaining)
        return True


def spin(seconds: float, value: Any = None) -> Any:
    """Compute (never yield, never sleep) for ``seconds`` of wall time, then return ``value``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass
    return value


def arrive_then_sleep_until_all(lock: Any, shared: MutableMapping[str, int], n: int, step: float = 0.05) -> int:
    """Count this task in, then ``unifex.sleep(step)`` until ``n`` tasks have
    (at most about 60 s); return how many had. Sleeping tasks that cannot
    overlap never see all ``n``."""
    with lock:
        shared["n"] = shared.get("n", 0) + 1
    for _ in range(int(60 / step)):
        if shared["n"] >= n:
            break
        unifex.sleep(step)
    return shared["n"]


# -- the ecosystem clauses (asyncio, contextvars) ---------------------------------------


async def async_square(x: int) -> int:
    """An ``async def`` task: awaits once, then returns ``x * x``."""
    import asyncio

    await asyncio.sleep(0)
    return x * x


def _ctx_var() -> Any:
    import contextvars

    var = globals().get("_CTX_VAR")
    if var is None:
        var = globals()["_CTX_VAR"] = contextvars.ContextVar("unifex_test_var", default="unset")
    return var


def set_ctx_var(value: Any) -> None:
    """Set the conformance suite's context variable in the calling context."""
    _ctx_var().set(value)


def get_ctx_var(_: Any = None) -> Any:
    """The conformance suite's context variable as the task sees it."""
    return _ctx_var().get()


def set_ctx_var_in_task(value: Any) -> Any:
    """Set the variable inside a task; return what the task then sees."""
    _ctx_var().set(value)
    return _ctx_var().get()
