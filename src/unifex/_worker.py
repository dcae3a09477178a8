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


# -- worker processes (process, dask): memory, output tail, forwarded logs ------------

_UNITS = {"": 1, "B": 1, "K": 1000, "KB": 1000, "M": 1000**2, "MB": 1000**2, "G": 1000**3, "GB": 1000**3,
          "KIB": 1024, "MIB": 1024**2, "GIB": 1024**3, "T": 1000**4, "TB": 1000**4, "TIB": 1024**4}  # fmt: skip


def parse_bytes(value: object, name: str = "max_memory_per_worker") -> int | None:
    """``500_000_000``, ``"500MB"``, ``"1.5 GiB"`` -> bytes; None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{name} must be a number of bytes or a size such as '500MB', not {value!r}")
    if isinstance(value, (int, float)):
        number, unit = float(value), ""
    elif isinstance(value, str):
        text = value.strip().upper().replace(" ", "").replace("_", "")
        digits = text.rstrip("KMGTIB")
        unit = text[len(digits) :]
        try:
            number = float(digits)
        except ValueError:
            number, unit = -1.0, "?"
    else:
        raise ValueError(f"{name} must be a number of bytes or a size such as '500MB', not {value!r}")
    if unit not in _UNITS or not number > 0:
        raise ValueError(f"{name} must be a positive number of bytes or a size such as '500MB' or '2GiB', not {value!r}")
    return int(number * _UNITS[unit])


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000:
            return f"{n:.0f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"


def rss_of(pid: int) -> int | None:
    """Resident memory of process ``pid`` in bytes (Linux ``/proc``, else
    psutil when installed), or None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil
    except ImportError:
        return None
    try:
        return int(psutil.Process(pid).memory_info().rss)
    except Exception:
        return None


try:
    import os as _os

    _PAGE = _os.sysconf("SC_PAGE_SIZE")
except (AttributeError, ValueError, OSError):  # pragma: no cover - not POSIX
    _PAGE = 4096

#: lines of a worker's output kept for the notes of a failed task
TAIL_LINES = 20


class _Tee:
    """A text stream that writes through and keeps the last complete lines in
    the tail of the task running in the writing thread."""

    def __init__(self, stream: Any, label: str, io: WorkerIO) -> None:
        self._stream = stream
        self._label = label
        self._io = io
        self._partial = ""

    def write(self, text: str) -> int:
        stream = self._stream
        n = stream.write(text) if stream is not None else len(text)
        tail = getattr(self._io.local, "tail", None)
        if tail is not None:
            if "\n" in text:
                lines = (self._partial + text).split("\n")
                self._partial = lines.pop()
                for line in lines:
                    tail.append(f"{self._label}: {line}")
            else:
                self._partial = (self._partial + text)[-4096:]
        return int(n) if n is not None else len(text)

    def flush(self) -> None:
        if self._stream is not None:
            self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


class WorkerIO:
    """In a worker process: the tail of what each task writes to stdout/stderr,
    for the notes of a failed task, and its ``logging`` records forwarded to the
    parent through a ``send(record_dict)``, tagged with the running task's name
    (``task_name``) and the worker's pid (``worker_pid``). Task threads are told
    apart, so a dask worker with several threads keeps one tail per task."""

    def __init__(self, send: Callable[[dict[str, Any]], object] | None, level: int | None, own_root: bool = True) -> None:
        self.local = threading.local()
        self.send = send
        sys.stdout = _Tee(sys.stdout, "stdout", self)  # type: ignore[assignment]
        sys.stderr = _Tee(sys.stderr, "stderr", self)  # type: ignore[assignment]
        root = logging.getLogger()
        if own_root:
            for handler in list(root.handlers):  # inherited under fork: the parent prints them once
                root.removeHandler(handler)
            if level is not None:
                root.setLevel(level)
        root.addHandler(_Forward(self, level if level is not None else logging.NOTSET))

    def begin(self, fn: Any, send: Callable[[dict[str, Any]], object] | None = None) -> None:
        """A task starts in this thread: name it for log records, start its
        output tail afresh; ``send`` overrides where its records go."""
        from collections import deque

        local = self.local
        local.task_name = _name(fn)
        local.tail = deque(maxlen=TAIL_LINES)
        local.send = send

    def end(self) -> None:
        local = self.local
        local.task_name = local.tail = local.send = None

    def note(self, exc: BaseException) -> None:
        """Add the task's last output lines to ``exc``'s notes."""
        tail = getattr(self.local, "tail", None)
        if tail and hasattr(exc, "add_note"):
            import os

            exc.add_note(f"unifex: the last lines the worker (pid {os.getpid()}) wrote while running the task:\n" + "\n".join(tail))


class _Forward(logging.Handler):
    def __init__(self, io: WorkerIO, level: int) -> None:
        super().__init__(level)
        self._io = io
        self._busy = threading.local()

    def emit(self, record: logging.LogRecord) -> None:
        local = self._io.local
        send = getattr(local, "send", None) or self._io.send
        if send is None or getattr(self._busy, "on", False):
            return  # outside a task with nowhere to send, or a record logged while sending one
        self._busy.on = True
        try:
            send(record_to_dict(record, getattr(local, "task_name", None)))
        except Exception:
            self.handleError(record)
        finally:
            self._busy.on = False


_STANDARD = frozenset(logging.makeLogRecord({}).__dict__) | {"message", "asctime"}


def record_to_dict(record: logging.LogRecord, task_name: str | None) -> dict[str, Any]:
    """A picklable copy of ``record``: message formatted, traceback as text."""
    import os
    import pickle

    d = dict(record.__dict__)
    d["msg"] = record.getMessage()
    d["args"] = None
    if record.exc_info:
        d["exc_text"] = logging.Formatter().formatException(record.exc_info)
    d["exc_info"] = None
    d.pop("message", None)
    for key in [k for k in d if k not in _STANDARD]:
        try:
            pickle.dumps(d[key])
        except Exception:
            d[key] = repr(d[key])
    d["task_name"] = task_name
    d["worker_pid"] = os.getpid()
    return d


def emit_forwarded(d: dict[str, Any]) -> None:
    """In the parent: hand a forwarded record to the logger it was logged on."""
    record = logging.makeLogRecord(d)
    target = logging.getLogger(record.name)
    if target.isEnabledFor(record.levelno):
        target.handle(record)
