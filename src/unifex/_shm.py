"""Large buffers through POSIX shared memory instead of a pipe: pickle protocol 5
with out-of-band buffers, each message's large buffers packed into one segment.

How a message crosses::

    sender                                         receiver
    ======                                         ========
    pickle(obj, protocol=5, buffer_callback)       read the envelope from the pipe
      buffers >= threshold: out of band            shm_open + mmap the segment
      (numpy arrays, pandas through them,          pickle.loads(inner, buffers=views of
      PickleBuffer; top-level bytes, bytearray,      the mapping): arrays view the mapping,
      memoryview via a wrapper)                      no copy; the mapping lives as long as
    shm_open(O_EXCL) + pwrite the buffers            they do
    the pipe carries a small envelope:
      MARK + pickle((name, size, spans, inner))

Who unlinks a segment (``unlink``): a message's *receiver* when the sender is a
worker (results: the parent maps, then unlinks at once); the *sender* when it
is the parent (task arguments: when the task ends, whichever way). Names carry
the parent's pid (``/uxd<pid>-…``) and, for worker-made segments, the worker's
(``/uxd<ppid>-w<pid>-…``), so the parent sweeps what a dead worker left
(:func:`sweep`) and anyone can sweep what a dead parent left
(:func:`sweep_dead`). Every segment is also registered with multiprocessing's
resource tracker, which the parent and its workers share: if the parent is
killed with SIGKILL, the tracker unlinks what is left when the last of them is
gone. Segments are created with ``_posixshmem`` directly, not
``multiprocessing.shared_memory.SharedMemory``, whose attach registers the name
again (the tracker's false "leaked" warnings on 3.11).

What the receiver gets: numpy arrays and ``memoryview`` objects are writable
views of the mapping (the segment is private to one message: nothing else maps
it, so this is the stdlib's private copy without the copy); ``bytes`` and
``bytearray`` are rebuilt from it (one copy, a ``bytes`` cannot view foreign
memory). Views from :func:`load_shared` (``Executor.share``) are read-only: many
processes map that segment.
"""

from __future__ import annotations

import _posixshmem  # type: ignore[import-not-found]
import glob
import itertools
import mmap
import os
import pickle
import re
import threading
from collections.abc import Callable, Iterable
from multiprocessing import resource_tracker
from typing import Any

__all__ = [
    "DEFAULT_THRESHOLD",
    "MARK",
    "Envelope",
    "dump",
    "load",
    "load_shared",
    "sweep",
    "sweep_dead",
    "unlink",
    "wrap_args",
    "wrap_value",
]

#: buffers at or above this many bytes travel through shared memory
DEFAULT_THRESHOLD = 1 << 20
#: first bytes of a pipe message that is an envelope (no pickle starts with NUL)
MARK = b"\x00uxshm"
_MARK_LEN = len(MARK)
_PROTOCOL = 5
_ALIGN = 64  # numpy likes aligned buffers
_SHM_DIR = "/dev/shm"
_POPULATE = getattr(mmap, "MAP_POPULATE", 0)
_counter = itertools.count()
_counter_lock = threading.Lock()


def _next() -> int:
    with _counter_lock:
        return next(_counter)


def _track(name: str) -> None:
    try:
        resource_tracker.register(name, "shared_memory")
    except Exception:  # no tracker (an odd embedding): the sweeps still apply
        pass


def _untrack(name: str) -> None:
    try:
        resource_tracker.unregister(name, "shared_memory")
    except Exception:
        pass


def unlink(names: Iterable[str]) -> None:
    """Unlink segments (those already gone are skipped) and forget them in the tracker."""
    for name in names:
        try:
            _posixshmem.shm_unlink(name)
        except FileNotFoundError:
            continue
        except OSError:
            continue
        _untrack(name)


def sweep(prefix: str) -> list[str]:
    """Unlink every segment whose name starts with ``prefix`` (``/uxd…``); return them."""
    names = [p[len(_SHM_DIR) :] for p in glob.glob(f"{_SHM_DIR}{glob.escape(prefix)}*")]
    unlink(names)
    return names


_OWNER = re.compile(r"^uxd(\d+)-")


def sweep_dead() -> list[str]:
    """Unlink segments left by unifex processes that no longer exist (a parent
    killed with SIGKILL while the resource tracker was killed too)."""
    found: list[str] = []
    for path in glob.glob(f"{_SHM_DIR}/uxd*"):
        m = _OWNER.match(os.path.basename(path))
        if m is None:
            continue
        pid = int(m.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            found.append(path[len(_SHM_DIR) :])
        except PermissionError:
            continue
    unlink(found)
    return found


# -- top-level bytes, bytearray, memoryview -----------------------------------------
# pickle writes exact bytes and bytearray in band whatever buffer_callback says,
# and cannot pickle a memoryview: a large one at the top of the arguments or of
# the result is wrapped so it travels out of band too.

_BYTES, _BYTEARRAY, _MEMORYVIEW = 0, 1, 2
_WRAPPED: dict[type, int] = {bytes: _BYTES, bytearray: _BYTEARRAY, memoryview: _MEMORYVIEW}


def _rebuild(code: int, buf: Any, fmt: str = "B", shape: tuple[int, ...] | None = None) -> Any:
    if code == _BYTES:
        return bytes(buf)
    if code == _BYTEARRAY:
        return bytearray(buf)
    view: Any = memoryview(buf).cast("B")
    if fmt != "B" or (shape is not None and len(shape) != 1):
        view = view.cast(fmt, shape) if shape else view.cast(fmt)
    return view


class _Big:
    """A large ``bytes``/``bytearray``/``memoryview`` on its way out of band."""

    __slots__ = ("obj",)

    def __init__(self, obj: Any) -> None:
        self.obj = obj

    def __reduce_ex__(self, protocol: Any) -> tuple[Any, ...]:
        obj = self.obj
        code = _WRAPPED[type(obj)]
        if code == _MEMORYVIEW:
            return (_rebuild, (code, pickle.PickleBuffer(obj), obj.format, tuple(obj.shape)))
        return (_rebuild, (code, pickle.PickleBuffer(obj)))


def _big(value: Any, threshold: int) -> bool:
    t = type(value)
    if t is bytes or t is bytearray:
        return len(value) >= threshold
    if t is memoryview:
        return bool(value.nbytes >= threshold and value.contiguous)
    return False


def wrap_value(value: Any, threshold: int | None) -> Any:
    """``value``, or a wrapper sending it out of band if it is a large bytes,
    bytearray or memoryview, or a tuple/list/dict holding one at its top level."""
    if threshold is None:
        return value
    t = type(value)
    if t in _WRAPPED:
        return _Big(value) if _big(value, threshold) else value
    if t is tuple or t is list:
        if any(_big(v, threshold) for v in value):
            return t(_Big(v) if _big(v, threshold) else v for v in value)
    elif t is dict and any(_big(v, threshold) for v in value.values()):
        return {k: _Big(v) if _big(v, threshold) else v for k, v in value.items()}
    return value


def wrap_args(args: tuple[Any, ...], kwargs: dict[str, Any], threshold: int | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """:func:`wrap_value` for each argument of a call."""
    if threshold is None:
        return args, kwargs
    if args and any(type(a) in _WRAPPED or type(a) in (tuple, list, dict) for a in args):
        args = tuple(wrap_value(a, threshold) for a in args)
    if kwargs and any(type(v) in _WRAPPED or type(v) in (tuple, list, dict) for v in kwargs.values()):
        kwargs = {k: wrap_value(v, threshold) for k, v in kwargs.items()}
    return args, kwargs


# -- messages ----------------------------------------------------------------------


class Envelope:
    """A pickled message whose large buffers are in a segment: ``data`` goes
    through the pipe, ``name`` is the segment (None: everything is in ``data``)."""

    __slots__ = ("data", "name")

    def __init__(self, data: bytes, name: str | None) -> None:
        self.data = data
        self.name = name


def _pwrite_all(fd: int, buf: memoryview, offset: int) -> None:
    done = 0
    n = buf.nbytes
    while done < n:
        done += os.pwrite(fd, buf[done:], offset + done)


def dump(
    obj: Any,
    pickler: Callable[[Any, Callable[[pickle.PickleBuffer], Any]], bytes],
    threshold: int | None,
    prefix: str,
    whole: bool = False,
) -> Envelope:
    """Pickle ``obj`` with ``pickler(obj, buffer_callback)``; buffers of at least
    ``threshold`` bytes, and the rest of the pickle too when it is that large (or
    ``whole``), go into a new segment named ``prefix`` + a number."""
    if threshold is None:
        return Envelope(pickler(obj, _in_band), None)
    big: list[memoryview] = []

    def callback(buf: pickle.PickleBuffer) -> bool:
        try:
            raw = buf.raw()
        except BufferError:  # not contiguous: stays in band
            return True
        if raw.nbytes < threshold:
            return True
        big.append(raw)
        return False

    data = pickler(obj, callback)
    if not big and not whole and len(data) < threshold:
        return Envelope(data, None)
    spans: list[tuple[int, int]] = []
    offset = 0
    for raw in big:
        spans.append((offset, raw.nbytes))
        offset += -(-raw.nbytes // _ALIGN) * _ALIGN
    inner: bytes | tuple[int, int] = data
    if whole or len(data) >= threshold:
        inner = (offset, len(data))
        size = offset + len(data)
    else:
        size = offset
    name = f"{prefix}{_next()}"
    fd = _posixshmem.shm_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    _track(name)
    try:
        os.ftruncate(fd, max(size, 1))
        for raw, (off, _) in zip(big, spans, strict=True):
            _pwrite_all(fd, raw, off)
        if isinstance(inner, tuple):
            _pwrite_all(fd, memoryview(data), inner[0])
    except BaseException:
        os.close(fd)
        unlink([name])
        raise
    os.close(fd)
    return Envelope(MARK + pickle.dumps((name, size, spans, inner), _PROTOCOL), name)


def _in_band(buf: pickle.PickleBuffer) -> bool:
    return True


def _map(name: str, size: int, writable: bool) -> mmap.mmap:
    fd = _posixshmem.shm_open(name, os.O_RDWR if writable else os.O_RDONLY, 0)
    try:
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        return mmap.mmap(fd, max(size, 1), flags=mmap.MAP_SHARED | _POPULATE, prot=prot)
    finally:
        os.close(fd)


def is_envelope(data: bytes) -> bool:
    return data[:_MARK_LEN] == MARK


def load(data: bytes, unlink_after: bool, loads: Callable[..., Any] = pickle.loads) -> Any:
    """Unpickle a message that :func:`dump` made (an envelope or a plain pickle).
    ``unlink_after``: this side owns the segment and unlinks it once mapped."""
    if data[:_MARK_LEN] != MARK:
        return loads(data)
    name, size, spans, inner = pickle.loads(memoryview(data)[_MARK_LEN:])
    try:
        mm = _map(name, size, True)
    finally:
        if unlink_after:
            unlink([name])
    return _unpickle(mm, spans, inner, loads)


def _unpickle(mm: mmap.mmap, spans: list[tuple[int, int]], inner: Any, loads: Callable[..., Any]) -> Any:
    view = memoryview(mm)
    buffers = [view[off : off + n] for off, n in spans]
    if isinstance(inner, tuple):
        off, n = inner
        inner = view[off : off + n]
    # the arrays made from ``buffers`` keep the mapping alive; it is unmapped
    # when the last of them is gone
    return loads(inner, buffers=buffers)


def load_shared(data: bytes, loads: Callable[..., Any] = pickle.loads) -> Any:
    """:func:`load` for a segment many processes map (``share``): read-only views."""
    name, size, spans, inner = pickle.loads(memoryview(data)[_MARK_LEN:])
    mm = _map(name, size, False)
    return _unpickle(mm, spans, inner, loads)
