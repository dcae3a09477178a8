"""Large buffers through POSIX shared memory instead of a pipe: pickle protocol 5
with out-of-band buffers, each large buffer in a segment of its own.

How a message crosses::

    sender                                         receiver
    ======                                         ========
    pickle(obj, protocol=5, buffer_callback)       read the envelope from the pipe
      buffers >= threshold: out of band            shm_open + mmap each segment
      (numpy arrays, pandas through them,          pickle.loads(inner, buffers=views of
      PickleBuffer; top-level bytes, bytearray,      the mappings): arrays view the mapping,
      memoryview via a wrapper)                      no copy; a mapping lives as long as
    shm_open(O_EXCL) + pwrite each buffer            the arrays on it
    the pipe carries a small envelope:
      MARK + pickle((spans, inner))

Who unlinks: task arguments are the parent's (it writes a buffer passed to many
tasks once, see :class:`Reuse`, and unlinks it when the last of them ends,
however it ends, unless it keeps it for the next submit of the same buffer);
a worker keeps its last task's argument mappings for its next task; results are the worker's until the parent maps them,
which unlinks them at once. Names carry the parent's pid (``/uxd<pid>-…``) and,
for worker-made segments, the worker's (``/uxd<ppid>-w<pid>-…``): the parent
sweeps what a dead worker left (:func:`sweep`) and anyone can sweep what a dead
parent left (:func:`sweep_dead`). Every segment is also registered with
multiprocessing's resource tracker, which the parent and its workers share: if
the parent is killed with SIGKILL, the tracker unlinks what is left once the
last of them is gone. Segments are made with ``_posixshmem`` directly, not
``multiprocessing.shared_memory.SharedMemory``, whose attach registers the name
again (the tracker's false "leaked" warnings on 3.11).

What the receiver gets: task arguments are *read-only* views of the mapping
(several tasks may map one segment; where the stdlib would hand each task a
private copy, copy it yourself: ``a.copy()``); results are writable views (the
segment was made for that one reply, nothing else maps it). ``bytes`` and
``bytearray`` are rebuilt from the mapping (one copy: a ``bytes`` cannot view
foreign memory); a ``memoryview`` views it. ``Executor.share`` values are
read-only views too.
"""

from __future__ import annotations

import _posixshmem  # type: ignore[import-not-found]
import ctypes
import glob
import itertools
import mmap
import os
import pickle
import re
import sys
import threading
import weakref
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Sequence
from multiprocessing import resource_tracker
from typing import Any, Generic, TypeVar

from ..._share import Shared

T = TypeVar("T")

__all__ = [
    "DEFAULT_THRESHOLD",
    "MARK",
    "Envelope",
    "SharedSegment",
    "dump",
    "dumps",
    "Reuse",
    "envelope_names",
    "is_envelope",
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


_SCAN = frozenset({bytes, bytearray, memoryview, tuple, list, dict})


def wrap_value(value: Any, threshold: int | None) -> Any:
    """``value``, or a wrapper sending it out of band if it is a large bytes,
    bytearray or memoryview, or a tuple/list/dict holding one at its top level."""
    t = type(value)
    if threshold is None or t not in _SCAN:
        return value
    if t in _WRAPPED:
        return _Big(value) if _big(value, threshold) else value
    if t is tuple or t is list:
        for v in value:
            if _big(v, threshold):
                return t(_Big(v) if _big(v, threshold) else v for v in value)
    elif t is dict:
        for v in value.values():
            if _big(v, threshold):
                return {k: _Big(v) if _big(v, threshold) else v for k, v in value.items()}
    return value


def wrap_args(args: tuple[Any, ...], kwargs: dict[str, Any], threshold: int | None) -> tuple[tuple[Any, ...], dict[str, Any]]:
    """:func:`wrap_value` for each argument of a call."""
    if threshold is None:
        return args, kwargs
    for a in args:
        if type(a) in _SCAN:
            args = tuple([wrap_value(a, threshold) for a in args])
            break
    if kwargs:
        for v in kwargs.values():
            if type(v) in _SCAN:
                kwargs = {k: wrap_value(v, threshold) for k, v in kwargs.items()}
                break
    return args, kwargs


# -- messages ----------------------------------------------------------------------


class Envelope:
    """A pickled message: ``data`` goes through the pipe; ``names`` are the
    segments holding its large buffers (empty: everything is in ``data``)."""

    __slots__ = ("data", "names")

    def __init__(self, data: bytes, names: list[str]) -> None:
        self.data = data
        self.names = names


def _pwrite_all(fd: int, buf: memoryview) -> None:
    done = 0
    n = buf.nbytes
    while done < n:
        done += os.pwrite(fd, buf[done:], done)


def _new_segment(prefix: str, buf: memoryview) -> str:
    name = f"{prefix}{_next()}"
    fd = _posixshmem.shm_open(name, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    _track(name)
    try:
        if buf.nbytes == 0:
            os.ftruncate(fd, 1)
        else:
            _pwrite_all(fd, buf)  # write(2) fills tmpfs pages without faulting them in here
    except BaseException:
        os.close(fd)
        unlink([name])
        raise
    os.close(fd)
    return name


def _address(buf: memoryview) -> int | None:
    """Where a buffer's bytes are, or None when ctypes cannot say."""
    try:
        return ctypes.addressof(ctypes.c_char.from_buffer(buf))
    except (TypeError, ValueError, BufferError):
        pass
    np = sys.modules.get("numpy")  # a read-only array (or bytes): numpy knows, if it is loaded
    if np is None:
        return None
    try:
        return int(np.frombuffer(buf, dtype=np.uint8).ctypes.data)
    except Exception:
        return None


_libc_memcmp: Any = None


def _memcmp(a: int, b: int, n: int) -> bool:
    global _libc_memcmp
    if _libc_memcmp is None:
        fn = ctypes.CDLL(None).memcmp
        fn.restype = ctypes.c_int
        fn.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t]
        _libc_memcmp = fn
    return bool(_libc_memcmp(a, b, n) == 0)  # ctypes lets the GIL go meanwhile


def _retain_budget() -> int:
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        ram = 16 << 30
    return int(min(1 << 30, ram // 16))


#: at most this many bytes of argument segments no task uses are kept for reuse
RETAIN_BYTES = _retain_budget()

_Key = tuple[int, int, int]
#: at most this many buffers remembered by one ``map`` call (:class:`Capture`)
_SEEN_MAX = 64


class _Live:
    __slots__ = ("address", "key", "mapping", "name", "nbytes", "refs", "source", "weak")

    def __init__(self, name: str, key: _Key, source: object, nbytes: int) -> None:
        self.name = name
        self.key = key
        self.source: object = source  # strong while tasks use it: id(source) stays its own
        self.weak: weakref.ref[Any] | None = None  # while idle (a source that has weak references)
        self.nbytes = nbytes
        self.refs = 1
        self.mapping: mmap.mmap | None = None  # the parent's own view, for the comparison
        self.address = 0


class Reuse:
    """The parent's argument segments, so that one array passed to many tasks
    is written to shared memory once (joblib memory-maps an array once per
    ``Parallel`` context, keyed by the array's identity alone). Here a buffer is
    reused only if it still holds the same bytes: ``memcmp`` against the
    segment, about a third of the cost of writing one, and a task always gets
    its argument as it was at submit time.

    Segments are counted by the tasks using them. When the last of them ends, a
    segment whose source is still alive stays ("idle") for the next submit of
    the same buffer, up to :data:`RETAIN_BYTES` in all (the oldest idle one goes
    first); it is unlinked when its source is garbage collected, when the source
    changed and a new segment replaced it, or at :meth:`close`."""

    def __init__(self, budget: int | None = None) -> None:
        _REUSES.add(self)
        self._lock = threading.Lock()
        self._by_key: dict[_Key, _Live] = {}
        self._by_name: dict[str, _Live] = {}
        self._idle: OrderedDict[str, _Live] = OrderedDict()  # oldest first
        self._idle_bytes = 0
        self._budget = RETAIN_BYTES if budget is None else budget
        self._dead: deque[str] = deque()  # idle segments whose source died (weakref callbacks)
        self._closed = False

    def segment(self, raw: memoryview, prefix: str, seen: dict[_Key, _Live] | None = None) -> str:
        """The name of a segment holding ``raw``'s bytes, for one task. ``seen``:
        the segments one ``map`` call already took (see :class:`Capture`)."""
        address = _address(raw)
        if address is None:
            return _new_segment(prefix, raw)
        key = (id(raw.obj), address, raw.nbytes)
        gone: list[str] = []
        try:
            with self._lock:
                gone.extend(self._drain())  # first: a dead source's id may be taken again
                live = self._by_key.get(key)
                if live is not None:
                    # still registered under this key: its source is the same
                    # live object (a collected one is drained above)
                    if seen is None or seen.get(key) is not live:
                        if live.mapping is None:
                            live.mapping = _map(live.name, live.nbytes, True)
                            live.address = ctypes.addressof(ctypes.c_char.from_buffer(live.mapping))
                        same = _memcmp(live.address, address, raw.nbytes)
                    else:
                        same = True  # captured earlier in this map call
                    if same:
                        if live.refs == 0:  # idle: in use again
                            self._idle.pop(live.name)
                            self._idle_bytes -= live.nbytes
                            live.weak = None
                            live.source = raw.obj
                        live.refs += 1
                        if seen is not None:
                            self._remember(seen, key, live)
                        return live.name
                    # changed since: the new bytes get a segment of their own
                    del self._by_key[key]
                    if live.refs == 0:
                        gone.append(self._forget_idle(live))
            name = _new_segment(prefix, raw)
            live = _Live(name, key, raw.obj, raw.nbytes)
            with self._lock:
                self._by_key[key] = live
                self._by_name[name] = live
                gone.extend(self._drain())
                if seen is not None:
                    self._remember(seen, key, live)
            return name
        finally:
            unlink(gone)
            self._after_unlock()

    def release(self, names: Iterable[str]) -> None:
        """The task that used ``names`` ended (however it ended)."""
        gone: list[str] = []
        source: object = None  # dropped outside the lock: it may be the last reference
        with self._lock:
            for name in names:
                live = self._by_name.get(name)
                if live is None:
                    gone.append(name)  # not ours to keep (a pickle too large for the pipe)
                    continue
                live.refs -= 1
                if live.refs > 0:
                    continue
                source, live.source = live.source, None
                if self._closed or self._by_key.get(live.key) is not live or not self._retain(live, source):
                    gone.append(self._forget(live))
            while self._idle_bytes > self._budget:
                gone.append(self._forget_idle(next(iter(self._idle.values()))))
            gone.extend(self._drain())
        del source
        unlink(gone)
        self._after_unlock()

    def close(self) -> None:
        """Unlink the idle segments; from now on each goes as its last task ends."""
        with self._lock:
            self._closed = True
            gone = [self._forget_idle(live) for live in list(self._idle.values())]
            self._dead.clear()
        unlink(gone)

    def _unmap_in_child(self) -> None:
        """In a child forked from the owner (a ``fork`` worker, or the user's own
        ``os.fork``): drop the inherited views of the segments, which would keep
        their memory alive for the child's whole life after the owner unlinks
        them. Only the owner's records use them."""
        self._lock = threading.Lock()  # may have been held by another thread at the fork
        for live in self._by_name.values():
            if live.mapping is not None:
                try:
                    live.mapping.close()
                except BufferError:  # a view of it is alive: it goes with the view
                    pass
                live.mapping = None
        self._by_key.clear()
        self._by_name.clear()
        self._idle.clear()
        self._dead.clear()
        self._idle_bytes = 0
        self._closed = True

    # -- under the lock -----------------------------------------------------------

    def _remember(self, seen: dict[_Key, _Live], key: _Key, live: _Live) -> None:
        """Record a capture; a long ``map`` over ever new arrays keeps at most
        :data:`_SEEN_MAX` of them (forgetting one costs a comparison, never a
        wrong segment)."""
        if len(seen) >= _SEEN_MAX and key not in seen:
            for stale in [k for k, v in seen.items() if self._by_key.get(k) is not v]:
                del seen[stale]
            if len(seen) >= _SEEN_MAX:
                seen.clear()
        seen[key] = live

    def _retain(self, live: _Live, source: object) -> bool:
        if live.nbytes > self._budget:
            return False
        name = live.name
        try:
            live.weak = weakref.ref(source, lambda _: self._source_died(name))
        except TypeError:  # no weak references (bytearray): cannot tell when it goes
            return False
        self._idle[name] = live
        self._idle_bytes += live.nbytes
        return True

    def _forget(self, live: _Live) -> str:
        self._by_name.pop(live.name, None)
        if self._by_key.get(live.key) is live:
            del self._by_key[live.key]
        live.source = live.weak = None
        live.mapping = None  # unmapped when the ctypes view is gone too
        return live.name

    def _forget_idle(self, live: _Live) -> str:
        del self._idle[live.name]
        self._idle_bytes -= live.nbytes
        return self._forget(live)

    def _drain(self) -> list[str]:
        gone: list[str] = []
        while self._dead:
            live = self._idle.get(self._dead.popleft())
            if live is not None:
                gone.append(self._forget_idle(live))
        return gone

    # -- weakref callbacks, in whatever thread drops the source --------------------

    def _source_died(self, name: str) -> None:
        self._dead.append(name)
        self._after_unlock()

    def _after_unlock(self) -> None:
        # a callback that found the lock taken left its name in ``_dead``: whoever
        # holds the lock drains it, and this catches one that came just after
        while self._dead and self._lock.acquire(blocking=False):
            try:
                gone = self._drain()
            finally:
                self._lock.release()
            unlink(gone)


_REUSES: weakref.WeakSet[Reuse] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for reuse in list(_REUSES):
        reuse._unmap_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)


class Capture:
    """One ``map`` call's view of :class:`Reuse`: a buffer met again in a later
    batch of the same call (``map(f, [a] * n)``, or an array bound into ``f``,
    which travels with every batch) takes the segment it got the first time
    without comparing its bytes again. So a ``map`` captures each buffer once,
    when its first batch is sent, as joblib's ``Parallel`` call does; each
    ``submit`` captures its arguments at submit time."""

    __slots__ = ("reuse", "seen")

    def __init__(self, reuse: Reuse) -> None:
        self.reuse = reuse
        self.seen: dict[_Key, _Live] = {}

    def segment(self, raw: memoryview, prefix: str) -> str:
        return self.reuse.segment(raw, prefix, self.seen)

    def release(self, names: Iterable[str]) -> None:
        self.reuse.release(names)


#: where the argument segments of one message come from
Segments = Reuse | Capture

#: ``pickler(obj, buffer_callback=None) -> bytes``
Pickler = Callable[..., bytes]


def dump(obj: Any, picklers: Sequence[Pickler], threshold: int | None, prefix: str, whole: bool = False, reuse: Segments | None = None) -> Envelope:
    """Pickle ``obj`` with the first of ``picklers`` (each called as
    ``pickler(obj, buffer_callback=...)``) that succeeds; each buffer of at
    least ``threshold`` bytes, and the rest of the pickle too when it is that
    large (or ``whole``), goes into a segment named ``prefix`` + a number (or a
    live one from ``reuse``). The last pickler's error propagates."""
    if threshold is None:
        return Envelope(picklers[0](obj), [])
    big: list[memoryview] = []
    callback = _collector(big, threshold)
    try:
        data = picklers[0](obj, buffer_callback=callback)
    except Exception:
        if len(picklers) == 1:
            raise
        big.clear()
        data = picklers[1](obj, buffer_callback=callback)
    if not big and not whole and len(data) < threshold:
        return Envelope(data, [])
    return _spill(data, big, threshold, prefix, whole, reuse)


def dumps(obj: Any, threshold: int, prefix: str, fallback: Pickler | None, reuse: Segments | None = None) -> bytes:
    """:func:`dump` on the hot path (every task and reply): plain ``pickle``
    first (then ``fallback``, if given, when it fails), and the pipe message
    itself returned: the pickle when nothing is large, else the envelope."""
    big: list[memoryview] = []
    callback = _collector(big, threshold)
    try:
        data = _pickle_dumps(obj, _PROTOCOL, buffer_callback=callback)
    except Exception:
        if fallback is None:
            raise
        big.clear()
        data = fallback(obj, buffer_callback=callback)
    if not big and len(data) < threshold:
        return data
    return _spill(data, big, threshold, prefix, False, reuse).data


_pickle_dumps = pickle.dumps


def _collector(big: list[memoryview], threshold: int) -> Callable[[pickle.PickleBuffer], bool]:
    def callback(buf: pickle.PickleBuffer) -> bool:
        try:
            raw = buf.raw()
        except BufferError:  # not contiguous: stays in band
            return True
        if raw.nbytes < threshold:
            return True
        big.append(raw)
        return False

    return callback


def _spill(data: bytes, big: list[memoryview], threshold: int, prefix: str, whole: bool, reuse: Segments | None) -> Envelope:
    """Write the large buffers (and a large rest) into segments; the envelope."""
    names: list[str] = []
    try:
        spans: list[tuple[str, int]] = []
        for raw in big:
            name = _new_segment(prefix, raw) if reuse is None else reuse.segment(raw, prefix)
            names.append(name)
            spans.append((name, raw.nbytes))
        inner: bytes | tuple[str, int] = data
        if whole or len(data) >= threshold:
            name = _new_segment(prefix, memoryview(data))
            names.append(name)
            inner = (name, len(data))
    except BaseException:
        if reuse is None:
            unlink(names)
        else:
            reuse.release(names)
        raise
    return Envelope(MARK + pickle.dumps((spans, inner), _PROTOCOL), names)


def _map(name: str, size: int, writable: bool) -> mmap.mmap:
    fd = _posixshmem.shm_open(name, os.O_RDWR if writable else os.O_RDONLY, 0)
    try:
        prot = mmap.PROT_READ | (mmap.PROT_WRITE if writable else 0)
        return mmap.mmap(fd, max(size, 1), flags=mmap.MAP_SHARED | _POPULATE, prot=prot)
    finally:
        os.close(fd)


def is_envelope(data: bytes) -> bool:
    return data[:_MARK_LEN] == MARK


def envelope_names(data: bytes) -> list[str]:
    """The segments an envelope points to (none for a plain pickle)."""
    if data[:_MARK_LEN] != MARK:
        return []
    spans, inner = pickle.loads(memoryview(data)[_MARK_LEN:])
    names = [name for name, _ in spans]
    if isinstance(inner, tuple):
        names.append(inner[0])
    return names


def load(data: bytes, private: bool, loads: Callable[..., Any] = pickle.loads, maps: dict[str, mmap.mmap] | None = None) -> Any:
    """Unpickle a message that :func:`dump` made (an envelope or a plain pickle).
    ``private``: the sender made these segments for this message alone (a
    worker's result): map them writable and unlink them at once. Otherwise (task
    arguments, which tasks in flight may share) map them read-only; the sender
    unlinks them. ``maps``: the read-only mappings of the previous message,
    reused for the segments this one names again (a name is never written
    twice, so a mapping of it never goes stale); left holding this message's."""
    if data[0] != 0:  # a plain pickle (it starts with PROTO, 0x80)
        if maps:
            maps.clear()
        return loads(data)
    spans, inner = pickle.loads(memoryview(data)[_MARK_LEN:])
    names = [name for name, _ in spans]
    if isinstance(inner, tuple):
        names.append(inner[0])
    try:
        if maps is None or private:
            buffers = [memoryview(_map(name, n, private))[:n] for name, n in spans]
        else:
            kept = {name: maps.get(name) or _map(name, n, False) for name, n in spans}
            maps.clear()
            maps.update(kept)
            buffers = [memoryview(kept[name])[:n] for name, n in spans]
        if isinstance(inner, tuple):
            inner = memoryview(_map(inner[0], inner[1], False))[: inner[1]]
    finally:
        if private:
            unlink(names)
    # arrays made from ``buffers`` keep their mapping alive; it is unmapped when
    # the last of them is gone
    return loads(inner, buffers=buffers)


def load_shared(data: bytes, loads: Callable[..., Any] = pickle.loads) -> Any:
    """:func:`load` for a segment many processes map (``share``): read-only views."""
    return load(data, False, loads)


# -- Executor.share --------------------------------------------------------------------


class SharedSegment(Shared[T], Generic[T]):
    """``ProcessExecutor.share(obj)``: ``obj`` pickled once into a segment that
    every process maps read-only; a task receives a small reference, and each
    worker maps and unpickles it once (the first task that gets it), then
    reuses it. ``value`` is the unpickled object in every process, the parent
    included (numpy arrays are read-only views of the segment)."""

    __slots__ = ("_data", "_names")

    def __init__(self, names: list[str], data: bytes, value: T) -> None:
        super().__init__(value)
        self._names = names
        self._data = data  # the envelope: small, and unique to this handle

    def __reduce__(self) -> tuple[Any, ...]:
        return (_attach, (self._data,))

    def _release(self) -> None:
        """Unlink the segments: no process maps them anew; those that have them
        keep their mappings while they hold the value."""
        _attached.pop(self._data, None)
        unlink(self._names)

    def __repr__(self) -> str:
        return f"<unifex.Shared {type(self._value).__name__} in shared memory>"


_attached: dict[bytes, SharedSegment[Any]] = {}
_attach_lock = threading.Lock()


def _attach(data: bytes) -> SharedSegment[Any]:
    """Unpickling a handle: map and load it the first time in this process."""
    handle = _attached.get(data)
    if handle is None:
        with _attach_lock:
            handle = _attached.get(data)
            if handle is None:
                handle = SharedSegment(envelope_names(data), data, load_shared(data))
                _attached[data] = handle
    return handle


def share(obj: T, picklers: Sequence[Pickler], prefix: str) -> SharedSegment[T]:
    """Pickle ``obj`` into a new segment (all of it: the handle stays small)."""
    env = dump(obj, picklers, DEFAULT_THRESHOLD, prefix, whole=True)
    try:
        handle: SharedSegment[T] = SharedSegment(env.names, env.data, load_shared(env.data))
    except BaseException:
        unlink(env.names)
        raise
    _attached[env.data] = handle
    return handle
