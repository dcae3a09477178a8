"""What runs on a dask worker: a task's unpickling, its wait context (deadline
and cancellation checks) and the pickled ``(ok, value, traceback)`` it returns.

Every line here runs inside a dask worker process (``dpickle`` also in the
client and on the scheduler: it is the wire format of every value we send).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import time
import traceback
from typing import Any

import cloudpickle
import distributed as _distributed

from ... import _wait
from ..._base import describe_call, run_chunk, run_items, terminated_error
from ..._errors import SerializationError

__all__ = ["dpickle", "run_remote"]

#: distributed is only partly annotated; its API is used here as dynamic
distributed: Any = _distributed

RUNNERS = (run_chunk, run_items)  # the batch runners of map

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


class RemoteTraceback(Exception):
    """The traceback of a task's exception as text, attached as ``__cause__``."""

    def __init__(self, tb: str) -> None:
        super().__init__(tb)
        self.tb = tb

    def __str__(self) -> str:
        return self.tb


def describe(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    if fn in RUNNERS and len(args) == 2:
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


def current_worker_waits() -> _WorkerWaits | None:
    ctx = _wait.current()
    return ctx if isinstance(ctx, _WorkerWaits) else None


def run_remote(payload: bytes, timeout: float | None) -> bytes:
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
        return _dumps_outcome(False, exc, traceback.format_exc(), describe(fn, args, kwargs))
    finally:
        _wait.set_task_deadline(None)
        _wait.remove_context(ctx)
    tb: str | None = None
    if fn in RUNNERS and value[1] is not None:  # a map batch stopped at an error: keep its traceback too
        tb = "".join(traceback.format_exception(value[1]))
    return _dumps_outcome(True, value, tb, describe(fn, args, kwargs))

