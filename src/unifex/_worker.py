"""Per-worker set-up and state, written once for every kind: the options
``initializer``/``initargs``/``finalizer``/``max_tasks_per_worker`` and
:func:`unifex.worker_state`.

A worker loop makes one :class:`WorkerLife` per worker (an OS thread, a gevent
or greenlet worker, a process, a dask worker), calls :meth:`WorkerLife.begin`
where the worker starts, runs its tasks through it and calls
:meth:`WorkerLife.end` when the worker leaves in order. ``worker_state()``
finds the state of the worker running the caller: greenlet workers are looked
up by greenlet, the others through a thread-local.
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from typing import Any, final

from ._future import Future

__all__ = ["WORKER_OPTIONS", "WorkerLife", "WorkerSetup", "bind_state", "register_state_lookup", "unbind_state", "worker_state"]

logger = logging.getLogger("unifex")

#: the per-worker options every kind with workers accepts
WORKER_OPTIONS = frozenset({"initializer", "initargs", "finalizer", "max_tasks_per_worker"})


class _Local(threading.local):
    state: dict[str, Any] | None = None


_local = _Local()
#: state of greenlet workers (gevent, greenlet kinds), by greenlet: a thread-local
#: is shared by every greenlet of a thread
_by_greenlet: dict[Any, dict[str, Any]] = {}
#: lookups a kind registers to find the state of the caller lazily (the
#: ``greenlet`` kind, whose worker greenlets are shared by its executors)
_lookups: list[Callable[[], dict[str, Any] | None]] = []


def register_state_lookup(lookup: Callable[[], dict[str, Any] | None]) -> None:
    """Add a way for :func:`worker_state` to find the caller's state."""
    if lookup not in _lookups:
        _lookups.append(lookup)


def worker_state() -> dict[str, Any]:
    """A dict private to the worker running the calling task (one per thread,
    process, greenlet worker or dask worker), kept from task to task until
    the worker is replaced: load a model once per worker and keep it here.

    Raises ``RuntimeError`` outside a task, initializer or finalizer of a unifex
    executor.
    """
    if _by_greenlet:
        glet = sys.modules.get("greenlet")
        if glet is not None:
            state = _by_greenlet.get(glet.getcurrent())
            if state is not None:
                return state
    state = _local.state
    if state is None:
        for lookup in _lookups:
            state = lookup()
            if state is not None:
                return state
        raise RuntimeError(
            "unifex.worker_state() works only inside a task, an initializer or a finalizer run by a unifex executor's worker"
        )
    return state


def bind_state(state: dict[str, Any] | None, greenlet: Any = None) -> dict[str, Any] | None:
    """Make ``state`` the worker state of the calling thread (or of ``greenlet``);
    return the one it replaces, for :func:`unbind_state`."""
    if greenlet is not None:
        if state is None:
            return _by_greenlet.pop(greenlet, None)
        previous = _by_greenlet.get(greenlet)
        _by_greenlet[greenlet] = state
        return previous
    previous = _local.state
    _local.state = state
    return previous


def unbind_state(previous: dict[str, Any] | None, greenlet: Any = None) -> None:
    """Undo :func:`bind_state`."""
    if greenlet is not None:
        if previous is None:
            _by_greenlet.pop(greenlet, None)
        else:
            _by_greenlet[greenlet] = previous
    else:
        _local.state = previous


def _name(fn: Any) -> str:
    return getattr(fn, "__qualname__", None) or getattr(fn, "__name__", None) or repr(fn)


@final
class WorkerSetup:
    """The worker options of one executor, checked once."""

    __slots__ = ("finalizer", "initargs", "initializer", "max_tasks")

    def __init__(
        self,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] | list[Any] = (),
        finalizer: Callable[[], object] | None = None,
        max_tasks_per_worker: int | None = None,
    ) -> None:
        if initializer is not None and not callable(initializer):
            raise TypeError(f"initializer must be callable or None, not {initializer!r}")
        if finalizer is not None and not callable(finalizer):
            raise TypeError(f"finalizer must be callable or None, not {finalizer!r}")
        if not isinstance(initargs, (tuple, list)):
            raise TypeError(f"initargs must be a tuple of arguments for the initializer, not {initargs!r}")
        if max_tasks_per_worker is not None and (
            isinstance(max_tasks_per_worker, bool) or not isinstance(max_tasks_per_worker, int) or max_tasks_per_worker < 1
        ):
            raise ValueError(f"max_tasks_per_worker must be a positive int or None, not {max_tasks_per_worker!r}")
        self.initializer = initializer
        self.initargs = tuple(initargs)
        self.finalizer = finalizer
        self.max_tasks = max_tasks_per_worker

    @property
    def plain(self) -> bool:
        """No option set: workers need no bookkeeping per task."""
        return self.initializer is None and self.finalizer is None and self.max_tasks is None


@final
class WorkerLife:
    """One worker's life: its state, its initializer's outcome, its task count."""

    __slots__ = ("done", "greenlet", "init_error", "kind", "previous", "setup", "state")

    def __init__(self, setup: WorkerSetup, kind: str = "?") -> None:
        self.setup = setup
        self.kind = kind
        self.state: dict[str, Any] = {}
        self.init_error: BaseException | None = None
        self.done = 0  # tasks taken
        self.greenlet: Any = None
        self.previous: dict[str, Any] | None = None

    def begin(self, greenlet: Any = None) -> None:
        """Bind the state where the worker runs (the calling thread, or
        ``greenlet``) and run the initializer there. An initializer that raises
        is logged once; every task this worker takes then fails with its error."""
        self.greenlet = greenlet
        self.previous = bind_state(self.state, greenlet)
        init = self.setup.initializer
        if init is None:
            return
        try:
            init(*self.setup.initargs)
        except BaseException as exc:
            note = (
                f"raised by the initializer {_name(init)}() of a unifex {self.kind!r} worker; "
                "every task that worker takes fails with this error without running"
            )
            if hasattr(exc, "add_note"):
                exc.add_note(note)
            logger.error("unifex: the initializer %s() of a %r worker raised %r; its tasks fail with it", _name(init), self.kind, exc)
            self.init_error = exc

    def take(self, fut: Future[Any]) -> bool:
        """Count one task; False (the future already failed) when the initializer
        failed, so the worker does not run it."""
        self.done += 1
        if self.init_error is None:
            return True
        if fut.set_running_or_notify_cancel():
            fut.try_set_exception(self.init_error)
        return False

    @property
    def spent(self) -> bool:
        """The worker has run its ``max_tasks_per_worker`` and should be replaced."""
        limit = self.setup.max_tasks
        return limit is not None and self.done >= limit

    def end(self, finalize: bool = True) -> None:
        """The worker leaves: run the finalizer (unless ``finalize`` is false: a
        worker stopped by ``terminate()``; an error is logged) and unbind its
        state."""
        fin = self.setup.finalizer
        try:
            if finalize and fin is not None and self.init_error is None:
                try:
                    fin()
                except Exception:
                    logger.exception("unifex: the finalizer %s() of a %r worker raised; the error was logged and ignored", _name(fin), self.kind)
        finally:
            unbind_state(self.previous, self.greenlet)
