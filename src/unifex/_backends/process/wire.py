"""The wire format of the ``process`` kind, shared by the parent and its workers:
the task and reply messages and how they are pickled (on top of :mod:`unifex._remote`).

Task messages (parent -> worker), one pickled tuple per pipe message; an empty
message asks the worker to exit::

    (_CALL, fn, args, kwargs)
    (_CHUNK, fn, [args tuple, ...], exact_from)     a map batch of argument tuples
    (_CHUNK1, fn, [item, ...], exact_from)          a map batch over one iterable

A message with buffers of at least ``zero_copy_threshold`` bytes (numpy arrays, ...)
is an envelope instead (see ``shm``): the buffers are in a shared-memory segment.

Replies (worker -> parent)::

    (_OK, result)
    (_RAISED, exception, traceback text)            also _INIT_FAILED
    (_LOST, message, traceback text or None)        could not cross: SerializationError
    (_CHUNK_DONE, results, error, traceback text, lost message or None)

A chunk's ``lost`` message concerns the item right after ``results`` and says
``{item}`` where the parent puts that item's position in the whole ``map``.
"""

from __future__ import annotations

import fcntl
import functools
import pickle
import sys
from typing import Any

from ..._remote import (
    PROTOCOL,
    RemoteTraceback,
    cloudpickle_dumps,
    describe_exception,
    dumps,
    from_main,
    loads,
    round_trips,
    traceback_text,
)
from . import shm

__all__ = ["RemoteTraceback"]

_PROTOCOL = PROTOCOL
_loads = loads

# task messages (parent -> worker); an empty message asks the worker to exit
_BLOCK = 64  # map items per progress mark (see _worker_main)
_CALL, _CHUNK, _CHUNK1 = 0, 1, 2  # _CHUNK1: a chunk of single arguments, sent flat
# replies (worker -> parent)
_OK, _RAISED, _LOST, _CHUNK_DONE, _INIT_FAILED = 0, 1, 2, 3, 4


_dumps = pickle.dumps  # plain pickle: the fast path of replies


def _cloudpickle_oob(obj: object, buffer_callback: Any = None) -> bytes:
    import cloudpickle

    return cloudpickle.dumps(obj, protocol=_PROTOCOL, buffer_callback=buffer_callback)  # type: ignore[no-any-return]


#: pickle, then cloudpickle, each with out-of-band buffers (see ``shm.dump``)
_PICKLERS: tuple[Any, ...] = (functools.partial(pickle.dumps, protocol=_PROTOCOL), _cloudpickle_oob)
_CLOUDPICKLER: tuple[Any, ...] = (_cloudpickle_oob,)


def _dumps_task(message: tuple[Any, ...], fn: Any, threshold: int | None = None, prefix: str = "", reuse: shm.Segments | None = None) -> bytes:
    """pickle, or cloudpickle for what pickle cannot carry (and for ``__main__``).
    With a ``threshold``, buffers that large travel in shared-memory segments
    named ``prefix`` + a number, and the message is their envelope (``shm``)."""
    if threshold is not None:
        if from_main(fn):
            return shm.dump(message, _CLOUDPICKLER, threshold, prefix, reuse=reuse).data
        return shm.dumps(message, threshold, prefix, _cloudpickle_oob, reuse)
    return dumps(message, by_value=from_main(fn))


_F_SETPIPE_SZ = 1031  # Linux fcntl: set a pipe's capacity
_PIPE_SIZE = 1 << 20


def _widen_pipe(fd: int) -> None:
    """Give a worker pipe 1 MiB (Linux; 64 KiB by default) so a map batch or its
    results usually go through in one write and one read: the sender does not
    block half-way and the dispatcher does not wait on one worker's write while
    others have replies ready. Elsewhere, or above the system's limit, keep the default."""
    if sys.platform.startswith("linux"):
        try:
            fcntl.fcntl(fd, _F_SETPIPE_SZ, _PIPE_SIZE)
        except OSError:
            pass


def _dumps_chunk(
    fn: Any, chunk: list[Any], flat: bool = False, exact_from: int | None = None, threshold: int | None = None, prefix: str = "", reuse: shm.Segments | None = None
) -> bytes:
    """A map chunk; a chunk of one iterable travels as a flat list (a third
    smaller than 1-tuples, and faster on both sides). ``flat``: the chunk
    already holds the items themselves (``run_items``). Items from
    ``exact_from`` on are run with their exact position recorded (slower); the
    ones before it in blocks of ``_BLOCK``, recording only where each block starts."""
    exact = len(chunk) if exact_from is None else exact_from
    if flat:
        return _dumps_task((_CHUNK1, fn, chunk, exact), fn, threshold, prefix, reuse)
    if len(chunk[0]) == 1:
        return _dumps_task((_CHUNK1, fn, [item[0] for item in chunk], exact), fn, threshold, prefix, reuse)
    return _dumps_task((_CHUNK, fn, chunk, exact), fn, threshold, prefix, reuse)


def _exception_reply(exc: BaseException, code: int = _RAISED) -> bytes:
    """Pickle an exception with its traceback text; if it cannot make the round
    trip, send its description so the parent raises SerializationError."""
    tb = traceback_text(exc)
    exc.__traceback__ = None
    for by_value in (False, True):
        try:
            data = dumps((code, exc, tb), by_value=by_value)
        except Exception:
            continue
        if round_trips(data):
            return data
    text = f"the task raised {describe_exception(exc)}, which could not be pickled back to the parent process"
    return _dumps((_LOST, text, tb), _PROTOCOL)


def _result_reply(result: object) -> bytes:
    try:
        return cloudpickle_dumps((_OK, result))
    except Exception as exc:
        text = f"the task's result, a {type(result).__qualname__}, could not be pickled back to the parent process ({describe_exception(exc)})"
        return _dumps((_LOST, text, None), _PROTOCOL)


def _chunk_reply(results: list[Any], error: BaseException | None, tb: str | None) -> bytes:
    """Slow path of a chunk reply: cut the results at the first one that cannot
    be pickled, so ``map`` raises SerializationError at that item's position."""
    lost: str | None = None
    for i, value in enumerate(results):
        try:
            dumps(value)
        except Exception as exc:
            lost = f"the result of {{item}}, a {type(value).__qualname__}, could not be pickled back to the parent process ({describe_exception(exc)})"
            results, error, tb = results[:i], None, None
            break
    if error is not None:
        try:
            if not round_trips(cloudpickle_dumps(error)):
                raise ValueError("the exception does not unpickle")
        except Exception:
            lost = f"{{item}} raised {describe_exception(error)}, which could not be pickled back to the parent process"
            error = None
    try:
        return cloudpickle_dumps((_CHUNK_DONE, results, error, tb, lost))
    except Exception as exc:
        return _dumps((_CHUNK_DONE, [], None, None, f"the results from {{item}} on could not be pickled back ({describe_exception(exc)})"), _PROTOCOL)
