"""The unifex error hierarchy.

Every error derives from :class:`UnifexError` and, where one fits, also from the
builtin exception a user already catches (``ValueError``, ``RuntimeError``,
``TimeoutError``).
"""

from __future__ import annotations

import signal

__all__ = [
    "DeadlockError",
    "ExecutorClosedError",
    "LivelockError",
    "SerializationError",
    "TaskTimeoutError",
    "TerminatedError",
    "UnifexError",
    "UnknownBackendError",
    "WorkerCrashedError",
]


class UnifexError(Exception):
    """Root of every error unifex raises itself."""


class UnknownBackendError(UnifexError, ValueError):
    """Raised by :func:`unifex.executor` for a kind that is not registered, or
    whose optional dependency is not installed (the message names the package)."""


class ExecutorClosedError(UnifexError, RuntimeError):
    """Raised when work is submitted after ``close()`` or ``terminate()``."""


class TaskTimeoutError(UnifexError, TimeoutError):
    """Raised by a task's future when the task ran past its ``timeout``; also
    raised inside a thread task by ``unifex.sleep`` or a helper's blocking call
    once the task's deadline has passed."""


class TerminatedError(UnifexError):
    """Raised by the future of a task that was running when ``terminate()``
    stopped the executor."""


class SerializationError(UnifexError):
    """Raised when the function, an argument or the result of a task could not
    be serialized to cross a process boundary; the message says which part."""


class DeadlockError(UnifexError):
    """Raised under the ``greenlet`` kind when a wait without a timeout can never
    end: no task can run, none sleeps, and every task waits on another."""


class LivelockError(UnifexError):
    """Raised by :func:`unifex.testing.explore` (and its replay) when a program
    under exploration takes too many scheduling steps without any task
    finishing: tasks that spin (``while not flag: sleep(0)``, a retry loop
    that never succeeds) instead of making progress. The message names the
    tasks that spin and the step bound (``max_steps``)."""


def describe_exitcode(exitcode: int | None) -> str:
    """Say how a process ended, in words: ``exit code 3`` or ``SIGKILL``."""
    if exitcode is None:
        return "an unknown cause"
    if exitcode < 0:
        try:
            return f"signal {signal.Signals(-exitcode).name}"
        except ValueError:
            return f"signal {-exitcode}"
    return f"exit code {exitcode}"


class WorkerCrashedError(UnifexError):
    """Raised by the future of a task whose worker died while running it.

    ``pid`` is the worker's process id and ``exitcode`` its exit status: negative
    for a signal, as in :mod:`multiprocessing`. The executor replaces the worker
    and keeps going.
    """

    def __init__(self, message: str, pid: int | None = None, exitcode: int | None = None) -> None:
        super().__init__(message)
        self.pid = pid
        self.exitcode = exitcode

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (str(self), self.pid, self.exitcode))
