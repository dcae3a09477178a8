"""The main loop of a ``process`` worker: every line here runs in the child.

It reads a task from its task pipe, runs it, writes the reply to its result
pipe, and exits when the parent asks (an empty message), when the parent dies
(the watcher thread sees EOF on the death pipe), or when the pipe closes.
"""

from __future__ import annotations

import ctypes
import mmap
import multiprocessing.connection
import os
import signal
import sys
import threading
from itertools import starmap
from time import monotonic_ns
from typing import Any

from ..._remote import describe_exception, traceback_text
from ..._worker import WorkerIO, WorkerLife, WorkerSetup
from .helpers import install_worker
from .shm import dumps, load, wrap_value
from .wire import (
    _BLOCK,
    _CALL,
    _CHUNK1,
    _CHUNK_DONE,
    _INIT_FAILED,
    _LOST,
    _OK,
    _PICKLERS,
    _PROTOCOL,
    _chunk_reply,
    _dumps,
    _exception_reply,
    _loads,
    _result_reply,
)

__all__ = ["LOG_MARK", "_worker_main"]

#: first byte of a forwarded log record on the result pipe (a reply is a pickle: b"\x80")
LOG_MARK = b"L"

_PR_SET_PDEATHSIG = 1
#: an idle worker keeps the last task's argument mappings this long for the next
#: task (one array to many tasks: no mmap and page-table fill per task), then unmaps
_KEEP_MAPS_SECONDS = 1.0


def _ask_for_death_signal(parent_pid: int) -> None:
    """Linux: SIGKILL this process when its parent dies."""
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os._exit(1)


def _start_life(init_payload: bytes | None, life_payload: bytes | None, send: Any) -> tuple[WorkerLife, WorkerIO]:
    """This process's worker life (worker_state(), initializer, finalizer) and
    its output tail and log forwarding (docs/lifecycle.md)."""
    initializer: Any = None
    initargs: Any = ()
    if init_payload is not None:
        try:
            initializer, initargs = _loads(init_payload)
        except BaseException as exc:  # it could not be unpickled here: fail the tasks with that
            error = exc

            def initializer() -> None:
                raise error

    finalizer, log_level = _loads(life_payload) if life_payload is not None else (None, None)

    def send_record(record: dict[str, Any]) -> None:
        send(LOG_MARK + _dumps(record, _PROTOCOL))

    io = WorkerIO(send_record, log_level)
    life = WorkerLife(WorkerSetup(initializer, initargs, finalizer), "process")
    life.begin()  # a raising initializer is logged (and forwarded) once, with a note naming it
    return life, io


def _watch_parent(death: multiprocessing.connection.Connection) -> None:
    try:
        death.recv_bytes()
    except BaseException:
        pass
    os._exit(1)  # the parent is gone: nobody wants our results


def _worker_main(
    tasks: multiprocessing.connection.Connection,
    results: multiprocessing.connection.Connection,
    death: multiprocessing.connection.Connection,
    close_fds: list[int],
    parent_pid: int,
    death_signal: bool,
    table: Any,
    slot: int,
    started_slot: int,
    token: int,
    init_payload: bytes | None,
    life_payload: bytes | None = None,
    zero_copy_threshold: int | None = None,
    keep_maps: bool = True,
) -> None:
    """A worker: read a task, run it, send the reply, until told to stop.

    ``progress[slot]`` says which map item runs (for blaming a crash);
    ``progress[started_slot]`` when the current call began (``time.monotonic_ns``),
    which is when its timeout starts counting. Buffers of at least
    ``zero_copy_threshold`` bytes in a result travel back in shared-memory segments
    named after the parent and this worker; the parent unlinks them once
    mapped, or sweeps them when it reaps this worker. ``keep_maps``: keep the
    last task's argument mappings for the next task (not when the parent checks
    this worker's resident memory, which would count them)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for fd in close_fds:  # fork: the parent's ends of our pipes and the death pipe
        try:
            os.close(fd)
        except OSError:
            pass
    if death_signal:
        _ask_for_death_signal(parent_pid)
    threading.Thread(target=_watch_parent, args=(death,), name="unifex-parent-watch", daemon=True).start()
    progress = install_worker(token, table) if slot >= 0 else None
    send_lock = threading.Lock()  # the reply and log records of other threads share the result pipe

    def send(data: bytes) -> None:
        with send_lock:
            results.send_bytes(data)

    life, io = _start_life(init_payload, life_payload, send)
    init_error: bytes | None = None
    if life.init_error is not None:
        init_error = _exception_reply(life.init_error, _INIT_FAILED)
    recv = tasks.recv_bytes
    threshold = zero_copy_threshold
    maps: dict[str, mmap.mmap] | None = {} if keep_maps else None  # the last task's argument segments, for the next task that names them
    prefix = f"/uxd{parent_pid}-w{os.getpid()}-"
    while True:
        try:
            data = recv()
        except (EOFError, OSError):
            return
        if not data:
            life.end()  # asked to stop: the finalizer runs
            return
        if progress is not None:
            progress[slot] = 0  # the task reached us (-1 until then: a crash now is not its fault)
        if init_error is not None:
            # every task given to a worker whose initializer failed fails with that error
            send(init_error)
            return
        try:
            message = load(data, False, maps=maps)  # a plain pickle, or an envelope whose segments the parent owns
        except BaseException as exc:
            text = f"the task could not be unpickled in the worker process ({describe_exception(exc)}); its module must be importable there"
            send(_dumps((_LOST, text, traceback_text(exc)), _PROTOCOL))
            continue
        del data
        if message[0] == _CALL:
            _, fn, args, kwargs = message
            del message
            if progress is not None:
                progress[started_slot] = monotonic_ns()
            io.begin(fn)
            try:
                result = fn(*args, **kwargs)
            except BaseException as exc:
                del fn, args, kwargs  # release the arguments now, not at the next task
                io.note(exc)
                reply = _exception_reply(exc)
                del exc
            else:
                del fn, args, kwargs
                try:
                    if threshold is None:
                        reply = _dumps((_OK, result), _PROTOCOL)
                    else:
                        reply = dumps((_OK, wrap_value(result, threshold)), threshold, prefix, _PICKLERS[1])
                except Exception:
                    reply = _result_reply(result)
                del result
        else:
            kind, fn, chunk, exact_from = message
            del message
            values: list[Any] = []
            error: BaseException | None = None
            tb: str | None = None
            # a crash is blamed on an item through ``progress``; writing it for
            # every item would cost as much as a tiny task, so items before
            # ``exact_from`` write it once per block (the parent re-runs a
            # crashed block with exact positions to find the item)
            each = map if kind == _CHUNK1 else starmap
            io.begin(fn)
            try:
                if progress is None:
                    values.extend(each(fn, chunk))
                else:
                    n = len(chunk)
                    fast_end = min(exact_from, n)
                    start = 0
                    while start < fast_end:
                        progress[slot] = start
                        end = min(start + _BLOCK, fast_end)
                        values.extend(each(fn, chunk[start:end]))
                        start = end
                    append = values.append
                    for i in range(fast_end, n):
                        progress[slot] = i
                        append(fn(chunk[i]) if kind == _CHUNK1 else fn(*chunk[i]))
            except BaseException as exc:
                io.note(exc)
                error, tb = exc, traceback_text(exc)
                exc.__traceback__ = None
            try:
                if threshold is None:
                    reply = _dumps((_CHUNK_DONE, values, error, tb, None), _PROTOCOL)
                else:
                    reply = dumps((_CHUNK_DONE, values, error, tb, None), threshold, prefix, None)
            except Exception:
                reply = _chunk_reply(values, error, tb)
            del values, chunk, error, fn
        try:
            send(reply)
        except OSError:
            return
        del reply
        if maps and not tasks.poll(_KEEP_MAPS_SECONDS):
            maps.clear()  # idle: let go of the last task's segments (the parent may have unlinked them)
