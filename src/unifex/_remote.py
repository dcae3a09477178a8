"""What the kinds that run tasks in other processes share (``process``, ``dask``),
written once: pickling with the cloudpickle fallback, naming the part that will
not pickle, the remote traceback, and how a worker process ended, in words.

* :func:`dumps` pickles with :mod:`pickle` and falls back to ``cloudpickle`` for
  what pickle cannot carry (lambdas, closures, local classes); ``by_value=True``
  goes straight to cloudpickle, which ships functions defined in ``__main__`` by
  value (use :func:`from_main` to decide): a worker cannot always import the
  program's ``__main__`` (an interactive session, a script read from stdin).
* :func:`serialization_error` pickles each part of a task alone and raises
  ``SerializationError`` naming the first that fails: ``argument 1``,
  ``keyword argument 'key'``, ``map input item 5`` (its position in the whole
  ``map``), with the value and what to do.
* :class:`RemoteTraceback` carries the text of a traceback from another process;
  it is attached as ``__cause__`` of the exception a future raises.
* :func:`exit_text` says how a worker process ended: ``was killed by SIGKILL``,
  ``exited with exit code 3``.
"""

from __future__ import annotations

import pickle
import signal
import traceback
from collections.abc import Callable, Iterable
from typing import Any

from ._errors import SerializationError

__all__ = [
    "PROTOCOL",
    "RemoteTraceback",
    "call_parts",
    "cloudpickle_dumps",
    "describe_exception",
    "describe_value",
    "dumps",
    "exit_text",
    "from_main",
    "loads",
    "map_parts",
    "round_trips",
    "serialization_error",
    "traceback_text",
    "unpicklable",
    "which_part",
]

#: the pickle protocol every process-crossing value uses
PROTOCOL: int = pickle.HIGHEST_PROTOCOL

#: the counterpart of :func:`dumps` (cloudpickle's output is ordinary pickle data)
loads: Callable[..., Any] = pickle.loads

_dumps = pickle.dumps


def cloudpickle_dumps(obj: object) -> bytes:
    """``cloudpickle.dumps``: functions and classes of ``__main__`` (and lambdas,
    closures) by value. Imported on first use: most values never need it."""
    import cloudpickle

    return cloudpickle.dumps(obj, protocol=PROTOCOL)  # type: ignore[no-any-return]


def dumps(obj: object, *, by_value: bool = False) -> bytes:
    """Pickle ``obj``; with cloudpickle when plain pickle cannot, when the data
    refers to ``__main__`` (a class or function of the program, which a worker
    may not be able to import), or at once when ``by_value`` (see
    :func:`from_main`). Raises what the pickler raised when neither can."""
    if not by_value:
        try:
            data = _dumps(obj, PROTOCOL)
        except Exception:
            pass
        else:
            if b"__main__" not in data:
                return data
    return cloudpickle_dumps(obj)


def from_main(fn: object) -> bool:
    """Whether ``fn`` was defined in the program's ``__main__``: it must travel by
    value, since a worker may not be able to import that module."""
    return getattr(fn, "__module__", None) == "__main__"


def round_trips(data: bytes) -> bool:
    """Whether ``data`` unpickles here (an exception whose constructor does not
    accept its own ``args`` pickles but does not come back)."""
    try:
        loads(data)
    except BaseException:
        return False
    return True


# -- saying what went wrong ------------------------------------------------------------


def describe_value(obj: object, limit: int = 60) -> str:
    """``repr(obj)`` cut to ``limit`` characters, or ``<Type object>`` if repr fails."""
    try:
        text = repr(obj)
    except Exception:
        text = f"<{type(obj).__name__} object>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def describe_exception(exc: BaseException) -> str:
    """``ValueError: bad input``, or the type alone if ``str(exc)`` fails."""
    try:
        return f"{type(exc).__qualname__}: {exc}"
    except Exception:
        return type(exc).__qualname__


def traceback_text(exc: BaseException) -> str:
    """The formatted traceback of ``exc``, to send where the exception is raised again."""
    return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))


def call_parts(fn: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, object]]:
    """The parts of a call, each with the label a message names it by."""
    parts: list[tuple[str, object]] = [("the function", fn)]
    parts += [(f"argument {i}", a) for i, a in enumerate(args)]
    parts += [(f"keyword argument {k!r}", v) for k, v in kwargs.items()]
    return parts


def map_parts(items: Iterable[object], start: int = 0) -> list[tuple[str, object]]:
    """The inputs of a ``map`` batch whose first item is at position ``start``
    of the whole ``map``, labelled by that position."""
    return [(f"map input item {start + i}", item) for i, item in enumerate(items)]


def unpicklable(parts: Iterable[tuple[str, object]]) -> tuple[int, str, object, BaseException] | None:
    """The first part that :func:`dumps` cannot pickle alone, as ``(index,
    label, value, error)``, or None if each pickles alone."""
    for index, (label, value) in enumerate(parts):
        try:
            dumps(value)
        except Exception as exc:
            return index, label, value, exc
    return None


def serialization_error(destination: str, label: str, value: object, error: BaseException) -> SerializationError:
    """``SerializationError``: ``label`` (``argument 1``), whose value is
    ``value``, could not be pickled to go to ``destination`` (``a worker
    process``), and what to do."""
    return SerializationError(
        f"cannot send the task to {destination}: {label} {describe_value(value)} could not be pickled "
        f"({describe_exception(error)}). Pass picklable values; for shared state use the executor's "
        "helpers (ex.Lock(), ex.Queue(), ex.dict(), ...)"
    )


def which_part(destination: str, parts: Iterable[tuple[str, object]], error: BaseException) -> SerializationError:
    """After pickling a whole task failed with ``error``: the
    :func:`serialization_error` of the first part that fails alone, or one that
    quotes ``error`` when each part pickles alone."""
    found = unpicklable(parts)
    if found is None:
        return SerializationError(f"cannot send the task to {destination}: pickling failed ({describe_exception(error)})")
    _, label, value, exc = found
    return serialization_error(destination, label, value, exc)


# -- what came back --------------------------------------------------------------------


class RemoteTraceback(Exception):
    """The traceback text of an exception raised in another process; attached
    as ``__cause__`` of the exception the future raises, so the traceback a
    user sees shows where the task failed."""

    def __init__(self, text: str, where: str = "a worker process") -> None:
        super().__init__(text, where)
        self.text = text
        self.where = where

    def __str__(self) -> str:
        return "\n\n" + self.text.rstrip() + f"\n(raised in {self.where})"


def exit_text(exitcode: int | None) -> str:
    """How a process ended, for "worker pid 12 ...": ``was killed by SIGKILL``,
    ``exited with exit code 3`` (``exitcode`` as :mod:`multiprocessing` gives
    it: negative for a signal; None if unknown)."""
    if exitcode is None:
        return "ended for an unknown reason"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        return f"was killed by {name}"
    return f"exited with exit code {exitcode}"
