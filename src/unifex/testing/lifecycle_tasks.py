"""Task functions of the conformance tests for worker set-up, state,
recycling and retries, importable by reference in every worker process and
dask worker.

Attempts are counted in a file (one line appended per attempt), so a retried
task sees its earlier attempts whichever worker, thread or process ran them.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
import uuid
from typing import Any

import unifex

__all__ = [
    "attempt",
    "count_in_state",
    "crash_first",
    "fail_times",
    "finalize_to_file",
    "init_fail",
    "init_state",
    "log_and_fail",
    "print_and_fail",
    "read_state",
    "slow_first",
    "worker_token",
]


def attempt(path: str) -> int:
    """Record one attempt in the file ``path``; return its number (1 for the first)."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, b"x\n")
    finally:
        os.close(fd)
    with open(path, "rb") as f:
        return f.read().count(b"\n")


def fail_times(path: str, times: int, value: Any = "ok", exc_type: type[BaseException] = OSError) -> Any:
    """Raise ``exc_type`` on the first ``times`` attempts, then return ``value``."""
    n = attempt(path)
    if n <= times:
        raise exc_type(f"attempt {n} failed on purpose")
    return value


def slow_first(path: str, value: Any = "ok") -> Any:
    """The first attempt sleeps 60 s in small ``unifex.sleep`` steps (a per-task
    timeout stops it on every kind); later attempts return ``value`` at once."""
    if attempt(path) == 1:
        for _ in range(1200):
            unifex.sleep(0.05)
    return value


def crash_first(path: str, value: Any = "ok") -> Any:
    """The first attempt kills its worker process; later ones return ``value``."""
    if attempt(path) == 1:
        os._exit(3)
    return value


def init_state(tag: Any, path: str | None = None) -> None:
    """An initializer: store ``tag`` (and ``path`` for the finalizer) in the
    worker's state, and count the initializer's runs there."""
    state = unifex.worker_state()
    state["tag"] = tag
    state["inits"] = state.get("inits", 0) + 1
    state.setdefault("token", uuid.uuid4().hex)
    if path is not None:
        state["path"] = path


def init_fail() -> None:
    raise LookupError("the initializer failed on purpose")


def finalize_to_file() -> None:
    """A finalizer: append the worker's token to the file its initializer named."""
    state = unifex.worker_state()
    fd = os.open(state["path"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (state["token"] + "\n").encode())
    finally:
        os.close(fd)


def read_state(_: Any = None) -> tuple[Any, int]:
    """``(tag, number of initializer runs)`` of the worker running this task."""
    state = unifex.worker_state()
    return state.get("tag"), state.get("inits", 0)


def worker_token(_: Any = None) -> str:
    """A token naming the worker running this task, made by its first task."""
    return str(unifex.worker_state().setdefault("token", uuid.uuid4().hex))


def count_in_state(_: Any = None) -> tuple[str, int]:
    """``(worker token, how many tasks this worker has run so far)``."""
    state = unifex.worker_state()
    counter = state.setdefault("counter", itertools.count(1))  # atomic: a dask worker's threads share the state
    return str(state.setdefault("token", uuid.uuid4().hex)), next(counter)


def log_and_fail(message: str, fail: bool = False) -> int:
    """Log ``message`` at WARNING on the ``unifex.test`` logger; raise if ``fail``."""
    logging.getLogger("unifex.test").warning(message)
    if fail:
        raise ValueError(message)
    return os.getpid()


def print_and_fail(message: str) -> None:
    """Print ``message`` to stdout and stderr, then raise."""
    print(f"out: {message}")
    print(f"err: {message}", file=sys.stderr)
    raise ValueError("failed after printing")
