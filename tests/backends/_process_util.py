"""Task functions and fixtures shared by the process backend tests (importable
in workers of every start method: pytest puts this directory on sys.path)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import time
from typing import Any

START_METHODS = ("forkserver", "spawn", "fork")


def exit_with(code: int) -> None:
    os._exit(code)


def kill_self(_: Any = None) -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def segfault(_: Any = None) -> None:
    ctypes.string_at(0)


def crash_at(x: int, bad: int) -> int:
    if x == bad:
        os._exit(7)
    return x * 10


def record_then_crash_at(x: int, bad: int, runs: Any) -> int:
    runs[f"{x}-{os.getpid()}-{time.monotonic_ns()}"] = x
    if x == bad:
        os._exit(7)
    return x


def pid_then_sleep(seconds: float, pids: Any) -> None:
    pids[os.getpid()] = True
    time.sleep(seconds)


def ignore_sigterm_then_sleep(seconds: float, pids: Any) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    pids[os.getpid()] = True
    time.sleep(seconds)


def hold_lock_then_exit(lock: Any, started: Any) -> None:
    lock.acquire()
    started.set()
    os._exit(5)


def hold_rlock_twice_then_exit(rlock: Any) -> None:
    rlock.acquire()
    rlock.acquire()
    os._exit(5)


def try_lock(lock: Any, timeout: float) -> bool:
    if lock.acquire(timeout=timeout):
        lock.release()
        return True
    return False


class Unpicklable:
    def __reduce__(self) -> Any:
        raise TypeError("Unpicklable refuses to be pickled")


def return_unpicklable(_: Any = None) -> Unpicklable:
    return Unpicklable()


class UnpicklableError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.payload = Unpicklable()


def raise_unpicklable(_: Any = None) -> None:
    raise UnpicklableError("cannot travel")


class TwoArgError(Exception):
    """Pickles fine; unpickling calls TwoArgError(*args) with one arg and fails."""

    def __init__(self, a: Any, b: Any) -> None:
        super().__init__(f"{a}/{b}")


def raise_two_arg(_: Any = None) -> None:
    raise TwoArgError(1, 2)


def _explode_in(pid: int, message: str) -> Exception:
    if os.getpid() == pid:
        raise RuntimeError("this exception cannot be rebuilt in the parent process")
    return ValueError(message)


class ParentHostileError(Exception):
    """Unpickles in the worker (which checks the round trip) but not in the parent."""

    def __init__(self, parent_pid: int, message: str) -> None:
        super().__init__(message)
        self.parent_pid = parent_pid

    def __reduce__(self) -> Any:
        return (_explode_in, (self.parent_pid, str(self)))


def raise_parent_hostile(parent_pid: int) -> None:
    raise ParentHostileError(parent_pid, "hostile")


def result_at(x: int, bad: int) -> Any:
    return Unpicklable() if x == bad else x


class Custom(Exception):
    pass


def raise_custom(message: str) -> None:
    raise Custom(message)


_initialized: list[Any] = []


def init_record(value: Any) -> None:
    _initialized.append(value)


def init_fail() -> None:
    raise LookupError("the initializer failed on purpose")


def initialized(_: Any = None) -> list[Any]:
    return list(_initialized)


def pid_exists(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone: it has exited)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def wait_gone(pids: Any, timeout: float) -> list[int]:
    end = time.monotonic() + timeout
    alive = [p for p in pids if pid_exists(p)]
    while alive and time.monotonic() < end:
        time.sleep(0.02)
        alive = [p for p in alive if pid_exists(p)]
    return alive


def hold_then_sleep(lock: Any, started: Any, seconds: float) -> None:
    """Take ``lock`` (a Lock or a Condition), say so, and sleep holding it."""
    with lock:
        started.set()
        time.sleep(seconds)


class ExitsWhenUnpickled:
    """Issue 14.1: unpickling it calls ``sys.exit(1)`` (raises SystemExit)."""

    def __reduce__(self) -> Any:
        return (sys.exit, (1,))


def return_exits_when_unpickled(_: Any = None) -> ExitsWhenUnpickled:
    return ExitsWhenUnpickled()


class SetsWhenCollected:
    """Sets ``event`` when this copy of it is garbage-collected."""

    def __init__(self, event: Any) -> None:
        self.event = event

    def __del__(self) -> None:
        try:
            self.event.set()
        except Exception:
            pass
