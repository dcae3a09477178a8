"""Cross-process helpers of the ``process`` kind: Lock, RLock, Event,
Semaphore, BoundedSemaphore, Condition, Queue and dict, passable to tasks as
ordinary arguments after the workers have started, under every start method.

How they cross: ``multiprocessing``'s own primitives refuse to be pickled
outside process creation, so these are built on *named* POSIX semaphores
(``/dev/shm/sem.ux…``): the parent creates them, a worker re-opens one by name
when it unpickles the helper (cached per process), and every process then
operates on the same kernel object with no server round trip. Names are
registered with multiprocessing's resource tracker (which unlinks them if the
parent is killed) and unlinked by the executor's ``close()``/``terminate()``.

* Lock / RLock / Semaphore / BoundedSemaphore: one semaphore each.
* Condition: the lock, a count of registered sleepers, a wake-up semaphore and
  a "woken" semaphore (the handshake of ``multiprocessing.Condition``). ``wait``
  registers while it holds the lock; ``notify(n)`` (which must hold the lock
  too) takes up to n registrations, posts one wake-up for each, and keeps the
  lock until each woken sleeper confirms, so a task that starts waiting later
  cannot take a wake-up meant for an earlier one. A sleeper that died cannot
  confirm: notify waits at most ``_NOTIFY_ACK_TIMEOUT`` seconds for each.
* Event: a flag semaphore and a Condition.
* Queue: a 1 MiB ring buffer in POSIX shared memory (``/dev/shm/uxq…``)
  guarded by a lock, with semaphores counting items, free places (``maxsize``)
  and ``join`` waiters. An item too large for the ring, or arriving while it is
  full, goes to a numbered overflow file (FIFO order kept), so ``put`` on an
  unbounded queue never waits.
* dict (``dict_server.py``): a server thread in the parent owns the real dict; workers talk to it
  over a Unix socket (one connection per worker process), the parent calls it
  directly. Each operation is atomic; values are copies, as with a Manager.

A worker that dies holding a Lock or RLock (crash, timeout kill): each lock
records its holder's pid in a table shared with the workers; when the executor
reaps a dead worker it releases every lock that worker held, so the other tasks
go on (the data the lock protected may be half-updated: the dead task's future
says WorkerCrashedError). Semaphore units and Condition waits of a dead worker
are not given back: a dead waiter may swallow one ``notify()`` and delay it
by up to ``_NOTIFY_ACK_TIMEOUT`` seconds.
"""

from __future__ import annotations

import _multiprocessing  # type: ignore[import-not-found]
import _posixshmem  # type: ignore[import-not-found]
import glob
import itertools
import os
import pickle
import queue
import secrets
import struct
import sys
import threading
from collections.abc import Callable
from multiprocessing import resource_tracker
from typing import TYPE_CHECKING, Any

from ..._errors import ExecutorClosedError
from ..._helpers import (
    Held,
    lock_timeout,
    queue_maxsize,
    queue_timeout,
    release_count,
    semaphore_timeout,
    semaphore_value,
    take,
    wait_timeout,
)
from ..._remote import dumps
from ..._shared import LockDelegate, wait_for

if TYPE_CHECKING:
    from .dict_server import SharedDict, _DictServer

__all__ = [
    "BoundedSemaphore",
    "Condition",
    "Event",
    "Lock",
    "Queue",
    "RLock",
    "Semaphore",
    "SharedDict",
    "SharedState",
    "install_worker",
]

_RECURSIVE_MUTEX, _SEMAPHORE = 0, 1
#: how long notify() waits for each woken sleeper to confirm (a dead one never does)
_NOTIFY_ACK_TIMEOUT = 2.0
SEM_VALUE_MAX: int = _multiprocessing.SemLock.SEM_VALUE_MAX
#: lock-owner slots per executor (locks beyond this work, without dead-holder release)
LOCK_SLOTS = 4096

_SemLock = _multiprocessing.SemLock

# -- per-process state: opened semaphores, owner tables, shared memory ---------------

_opened: dict[tuple[str, int], Any] = {}
_tables: dict[int, memoryview] = {}
_maps: dict[str, Any] = {}
_process_lock = threading.Lock()


def _after_fork_in_child() -> None:
    _opened.clear()
    _tables.clear()
    _maps.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _closed(what: str) -> ExecutorClosedError:
    return ExecutorClosedError(f"this {what} belongs to a 'process' executor that was closed; create helpers from a running executor")


def _open(name: str, kind: int, maxvalue: int) -> Any:
    """The semaphore called ``name``, opened once per process."""
    key = (name, kind)
    sem = _opened.get(key)
    if sem is None:
        with _process_lock:
            sem = _opened.get(key)
            if sem is None:
                try:
                    sem = _SemLock._rebuild(0, kind, maxvalue, name)
                except FileNotFoundError:
                    raise _closed("helper") from None
                _opened[key] = sem
    return sem


def install_worker(token: int, table: Any) -> memoryview | None:
    """In a worker: make the executor's shared table known; return the view
    the worker writes its map progress to."""
    if table is None:
        return None
    view = memoryview(table).cast("B").cast("q")
    _tables[token] = view
    return view


def _take(sem: Any, seconds: float | None) -> bool:
    """Take the SemLock ``sem`` (see :func:`unifex._helpers.take`)."""
    return take(sem.acquire, seconds)


class SharedState:
    """What one executor's helpers share: the semaphore names to unlink, the
    owner table (first the workers' map-progress slots, then one slot per lock),
    shared-memory segments and the dict server."""

    def __init__(self, progress_slots: int) -> None:
        import multiprocessing.sharedctypes

        self.token = secrets.randbits(62)
        self.table = multiprocessing.sharedctypes.RawArray("q", progress_slots + LOCK_SLOTS)
        self.view = memoryview(self.table).cast("B").cast("q")
        _tables[self.token] = self.view
        self._next_slot = itertools.count(progress_slots)
        self._end_slot = progress_slots + LOCK_SLOTS
        self._lock = threading.Lock()
        self._names: list[str] = []
        self._lock_slots: dict[int, str] = {}
        self._segments: list[str] = []
        self._counter = itertools.count()
        self._prefix = f"ux{os.getpid()}-{self.token:x}"
        self._server: _DictServer | None = None
        self.closed = False

    # -- creation ------------------------------------------------------------------

    def _new_semaphore(self, kind: int, value: int, maxvalue: int) -> str:
        with self._lock:
            if self.closed:
                raise _closed("executor")
            name = f"/{self._prefix}-{next(self._counter)}"
            sem = _SemLock(kind, value, maxvalue, name, False)
            self._names.append(name)
        resource_tracker.register(name, "semaphore")
        _opened[(name, kind)] = sem
        return name

    def _lock_slot(self, name: str) -> int:
        with self._lock:
            slot = next(self._next_slot)
            if slot >= self._end_slot:
                return -1
            self._lock_slots[slot] = name
            return slot

    def Lock(self) -> Lock:
        name = self._new_semaphore(_SEMAPHORE, 1, 1)
        return Lock(name, self.token, self._lock_slot(name))

    def RLock(self) -> RLock:
        name = self._new_semaphore(_RECURSIVE_MUTEX, 1, 1)
        return RLock(name, self.token, self._lock_slot(name))

    def Semaphore(self, value: int = 1) -> Semaphore:
        value = semaphore_value(value)
        return Semaphore(self._new_semaphore(_SEMAPHORE, value, SEM_VALUE_MAX), SEM_VALUE_MAX)

    def BoundedSemaphore(self, value: int = 1) -> BoundedSemaphore:
        # the bound is the initial value, 0 included: SemLock refuses a release past it
        value = semaphore_value(value)
        return BoundedSemaphore(self._new_semaphore(_SEMAPHORE, value, value), value)

    def Condition(self, lock: Any = None) -> Condition:
        if lock is None:
            lock = self.RLock()
        elif not isinstance(lock, (Lock, RLock)):
            raise TypeError(f"Condition(lock) needs a Lock or RLock made by the same 'process' executor, not {lock!r}")
        sleeping = self._new_semaphore(_SEMAPHORE, 0, SEM_VALUE_MAX)
        wake = self._new_semaphore(_SEMAPHORE, 0, SEM_VALUE_MAX)
        woken = self._new_semaphore(_SEMAPHORE, 0, SEM_VALUE_MAX)
        return Condition(lock, sleeping, wake, woken)

    def Event(self) -> Event:
        flag = self._new_semaphore(_SEMAPHORE, 0, 1)
        return Event(flag, self.Condition(self.Lock()))

    def Queue(self, maxsize: int = 0) -> Queue:
        maxsize = queue_maxsize(maxsize)
        with self._lock:
            if self.closed:
                raise _closed("executor")
            segment = f"/uxq{os.getpid()}-{self.token:x}-{next(self._counter)}"
            self._segments.append(segment)
        fd = _posixshmem.shm_open(segment, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        try:
            os.ftruncate(fd, _HEADER + _RING)
        finally:
            os.close(fd)
        resource_tracker.register(segment, "shared_memory")
        mutex = self.Lock()
        items = self._new_semaphore(_SEMAPHORE, 0, SEM_VALUE_MAX)
        places = self._new_semaphore(_SEMAPHORE, maxsize, SEM_VALUE_MAX) if maxsize > 0 else None
        joined = self._new_semaphore(_SEMAPHORE, 0, SEM_VALUE_MAX)
        return Queue(segment, maxsize, mutex, items, places, joined)

    def dict(self, *args: Any, **kwargs: Any) -> SharedDict:
        initial = dict(*args, **kwargs)
        with self._lock:
            if self.closed:
                raise _closed("executor")
            if self._server is None:
                from .dict_server import _DictServer

                self._server = _DictServer()
            server = self._server
        return server.new_dict(initial)

    # -- dead workers and closing --------------------------------------------------

    def release_owned_by(self, pid: int) -> None:
        """Release every lock the dead process ``pid`` held."""
        view = self.view
        for slot, name in list(self._lock_slots.items()):
            if view[slot] == pid:
                view[slot] = 0
                try:
                    # a handle of its own: releasing through this process's shared
                    # handle would upset that handle's owner count, and a thread
                    # here holding the lock next would no longer own it
                    _SemLock._rebuild(0, _SEMAPHORE, 1, name).release()
                except (ValueError, OSError):
                    pass

    def close(self) -> None:
        """Unlink every name (open handles keep working) and stop the dict server."""
        with self._lock:
            if self.closed:
                return
            self.closed = True
            names, self._names = self._names, []
            segments, self._segments = self._segments, []
            server, self._server = self._server, None
        for name in names:
            try:
                _multiprocessing.sem_unlink(name)
            except OSError:
                pass
            resource_tracker.unregister(name, "semaphore")
        for segment in segments:
            for spill in glob.glob(f"/dev/shm{segment}-o*"):
                try:
                    os.unlink(spill)
                except OSError:
                    pass
            try:
                _posixshmem.shm_unlink(segment)
            except OSError:
                pass
            resource_tracker.unregister(segment, "shared_memory")
        if server is not None:
            server.stop()
        _tables.pop(self.token, None)
        # this process's cached handles: the helper objects still alive hold
        # their own, and the rest are unmapped now, not at exit (a program
        # that makes executors and helpers in a loop met Linux's limit of
        # 65,530 mappings, or kept every Queue's 1 MiB ring)
        with _process_lock:
            for name in names:
                _opened.pop((name, _SEMAPHORE), None)
                _opened.pop((name, _RECURSIVE_MUTEX), None)
            for segment in segments:
                _maps.pop(segment, None)


# -- locks and semaphores --------------------------------------------------------------


class Lock(Held):
    """``threading.Lock`` across the executor's processes."""

    __slots__ = ("__weakref__", "_name", "_sem", "_slot", "_table", "_token")
    _kind = _SEMAPHORE

    def __init__(self, name: str, token: int, slot: int) -> None:
        self._name = name
        self._token = token
        self._slot = slot
        self._sem = _open(name, self._kind, 1)
        self._table = _tables.get(token) if slot >= 0 else None

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._name, self._token, self._slot))

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        if not _take(self._sem, lock_timeout(blocking, timeout)):
            return False
        table = self._table
        if table is not None:
            table[self._slot] = os.getpid()
        return True

    def release(self) -> None:
        table = self._table
        if table is not None:
            table[self._slot] = 0
        try:
            self._sem.release()
        except ValueError:
            raise RuntimeError("release unlocked lock") from None

    def locked(self) -> bool:
        return bool(self._sem._get_value() == 0)

    def _is_owned(self) -> bool:
        return bool(self._sem._is_mine())

    def _release_all(self) -> int:
        self.release()
        return 1

    def _reacquire(self, count: int) -> None:
        self.acquire()

    def __repr__(self) -> str:
        return f"<{'locked' if self.locked() else 'unlocked'} unifex_process.Lock object {self._name} at {id(self):#x}>"


class RLock(Lock):
    """``threading.RLock`` across the executor's processes."""

    __slots__ = ()
    _kind = _RECURSIVE_MUTEX

    def acquire(self, blocking: bool = True, timeout: float = -1) -> bool:
        sem = self._sem
        if not _take(sem, lock_timeout(blocking, timeout)):
            return False
        table = self._table
        if table is not None and sem._count() == 1:
            table[self._slot] = os.getpid()
        return True

    def release(self) -> None:
        sem = self._sem
        if not sem._is_mine():
            raise RuntimeError("cannot release un-acquired lock")
        table = self._table
        if table is not None and sem._count() == 1:
            table[self._slot] = 0
        sem.release()

    def locked(self) -> bool:
        return bool(self._sem._get_value() == 0)

    def _release_all(self) -> int:
        count = int(self._sem._count())
        for _ in range(count):
            self.release()
        return count

    def _reacquire(self, count: int) -> None:
        for _ in range(count):
            self.acquire()

    # threading.RLock's private protocol, which Condition-like code uses
    def _release_save(self) -> int:
        if not self._sem._is_mine():
            raise RuntimeError("cannot release un-acquired lock")
        return self._release_all()

    def _acquire_restore(self, count: int) -> None:
        self._reacquire(count)

    def _recursion_count(self) -> int:
        return int(self._sem._count()) if self._sem._is_mine() else 0

    def __repr__(self) -> str:
        owned = f" count={self._sem._count()}" if self._sem._is_mine() else ""
        return f"<{'locked' if self.locked() else 'unlocked'} unifex_process.RLock object {self._name}{owned} at {id(self):#x}>"


class Semaphore(Held):
    """``threading.Semaphore`` across the executor's processes."""

    __slots__ = ("__weakref__", "_maxvalue", "_name", "_sem")

    def __init__(self, name: str, maxvalue: int) -> None:
        self._name = name
        self._maxvalue = maxvalue
        self._sem = _open(name, _SEMAPHORE, maxvalue)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._name, self._maxvalue))

    def acquire(self, blocking: bool = True, timeout: float | None = None) -> bool:
        return _take(self._sem, semaphore_timeout(blocking, timeout))

    def release(self, n: int = 1) -> None:
        for _ in range(release_count(n)):
            try:
                self._sem.release()
            except ValueError:
                raise ValueError("Semaphore released too many times") from None

    def __repr__(self) -> str:
        return f"<unifex_process.Semaphore at {id(self):#x}: value={self._sem._get_value()}>"


class BoundedSemaphore(Semaphore):
    """``threading.BoundedSemaphore``: releasing above the initial value raises ValueError."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"<unifex_process.BoundedSemaphore at {id(self):#x}: value={self._sem._get_value()}/{self._maxvalue}>"


# -- condition and event ---------------------------------------------------------------


class Condition(LockDelegate):
    """``threading.Condition`` across the executor's processes.

    The handshake of :class:`multiprocessing.Condition`: ``notify`` holds the
    lock until every sleeper it woke has confirmed on the ``woken`` semaphore,
    so a task that starts waiting after the notify cannot take a wake-up meant
    for an earlier sleeper. A sleeper whose process died cannot confirm: the
    notifier waits at most ``_NOTIFY_ACK_TIMEOUT`` seconds for each one.
    """

    __slots__ = ("_lock", "_sems")

    def __init__(self, lock: Lock, sleeping: str, wake: str, woken: str) -> None:
        self._lock = lock
        # held, like a Lock's: they keep working after close() unlinked the names
        self._sems = tuple(_open(name, _SEMAPHORE, SEM_VALUE_MAX) for name in (sleeping, wake, woken))

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._lock, *(sem.name for sem in self._sems)))

    def _semaphores(self) -> tuple[Any, ...]:
        return self._sems

    def wait(self, timeout: float | None = None) -> bool:
        seconds = wait_timeout(timeout)
        lock = self._lock
        if not lock._is_owned():
            raise RuntimeError("cannot wait on un-acquired lock")
        sleeping, wake, woken = self._semaphores()
        sleeping.release()  # registered while holding the lock: a notify cannot slip in between
        count = lock._release_all()
        try:
            return _take(wake, seconds)
        finally:
            woken.release()  # awake (or timed out): tell the notifier
            lock._reacquire(count)

    def wait_for(self, predicate: Callable[[], Any], timeout: float | None = None) -> Any:
        return wait_for(self, predicate, timeout)

    def notify(self, n: int = 1) -> None:
        if not self._lock._is_owned():
            raise RuntimeError("cannot notify on un-acquired lock")
        sleeping, wake, woken = self._semaphores()
        # sleepers that timed out since the last notify left a confirmation: drop their registration
        while woken.acquire(False):
            sleeping.acquire(False)
        sleepers = 0
        while sleepers < n and sleeping.acquire(False):
            wake.release()
            sleepers += 1
        if not sleepers:
            return
        confirmed = sum(bool(woken.acquire(True, _NOTIFY_ACK_TIMEOUT)) for _ in range(sleepers))
        if confirmed == sleepers:
            # a sleeper that timed out meanwhile left its wake-up unused: take it back
            while wake.acquire(False):
                pass

    def notify_all(self) -> None:
        self.notify(sys.maxsize)

    def __repr__(self) -> str:
        return f"<unifex_process.Condition({self._lock!r})>"


class Event:
    """``threading.Event`` across the executor's processes."""

    __slots__ = ("__weakref__", "_cond", "_flag")

    def __init__(self, flag: str, cond: Condition) -> None:
        self._flag = _open(flag, _SEMAPHORE, 1)
        self._cond = cond

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self._flag.name, self._cond))

    def is_set(self) -> bool:
        return bool(self._flag._get_value() == 1)

    isSet = is_set

    def set(self) -> None:
        flag = self._flag
        with self._cond:
            if flag._get_value() == 0:
                flag.release()
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._flag.acquire(False)

    def wait(self, timeout: float | None = None) -> bool:
        seconds = wait_timeout(timeout)
        if self.is_set():
            return True
        with self._cond:
            # as threading.Event: woken by set() means True, even if clear() came before we ran
            return self.is_set() or self._cond.wait(seconds)

    def _at_fork_reinit(self) -> None:
        """Nothing to renew after a fork: the state lives in named semaphores
        that the child shares with every other process of the executor."""

    def __repr__(self) -> str:
        return f"<unifex_process.Event at {id(self):#x}: {'set' if self.is_set() else 'unset'}>"


# -- queue -----------------------------------------------------------------------------

# header: ring head and tail (byte offsets, only ever growing), item count,
# unfinished tasks, overflow head and tail (file numbers), join waiters
_HDR = struct.Struct("<7q")
_HEADER = 64
_RING = 1 << 20
_BIG = _RING // 4
_LEN = struct.Struct("<I")


def _map_segment(name: str) -> Any:
    mm = _maps.get(name)
    if mm is None:
        import mmap

        with _process_lock:
            mm = _maps.get(name)
            if mm is None:
                try:
                    fd = _posixshmem.shm_open(name, os.O_RDWR, 0o600)
                except FileNotFoundError:
                    raise _closed("Queue") from None
                try:
                    mm = mmap.mmap(fd, _HEADER + _RING)
                finally:
                    os.close(fd)
                _maps[name] = mm
    return mm


class Queue:
    """``queue.Queue`` (with ``task_done``/``join``) across the executor's processes.

    Items live in a 1 MiB ring buffer in shared memory. An item that does not
    fit (large, or the ring is full) goes to a numbered overflow file instead,
    and so do the items after it until the overflow drains, which keeps FIFO
    order: ``put`` on an unbounded queue never waits.
    """

    __slots__ = ("_buf", "_items", "_joined", "_mutex", "_places", "_segment", "maxsize")

    def __init__(self, segment: str, maxsize: int, mutex: Lock, items: str, places: str | None, joined: str) -> None:
        self._segment = segment
        self.maxsize = maxsize
        self._mutex = mutex
        self._items = _open(items, _SEMAPHORE, SEM_VALUE_MAX)
        self._places = _open(places, _SEMAPHORE, SEM_VALUE_MAX) if places is not None else None
        self._joined = _open(joined, _SEMAPHORE, SEM_VALUE_MAX)
        self._buf = memoryview(_map_segment(segment))

    def __reduce__(self) -> tuple[Any, ...]:
        names = (self._items.name, self._places.name if self._places is not None else None, self._joined.name)
        return (type(self), (self._segment, self.maxsize, self._mutex, *names))

    # ring access: call with the mutex held
    def _write(self, pos: int, data: bytes) -> None:
        pos %= _RING
        n = len(data)
        first = min(n, _RING - pos)
        buf = self._buf
        buf[_HEADER + pos : _HEADER + pos + first] = data[:first]
        if first < n:
            buf[_HEADER : _HEADER + n - first] = data[first:]

    def _read(self, pos: int, n: int) -> bytes:
        pos %= _RING
        first = min(n, _RING - pos)
        buf = self._buf
        if first == n:
            return bytes(buf[_HEADER + pos : _HEADER + pos + n])
        return bytes(buf[_HEADER + pos : _HEADER + pos + first]) + bytes(buf[_HEADER : _HEADER + n - first])

    def _overflow_name(self, number: int) -> str:
        return f"{self._segment}-o{number}"

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        data = dumps(item)
        seconds = queue_timeout(block, timeout)
        places = self._places
        if places is not None and not _take(places, seconds):
            raise queue.Full
        need = _LEN.size + len(data)
        buf = self._buf
        with self._mutex:
            head, tail, count, unfinished, ov_head, ov_tail, join_waiters = _HDR.unpack_from(buf, 0)
            if ov_head == ov_tail and len(data) <= _BIG and _RING - (tail - head) >= need:
                self._write(tail, _LEN.pack(len(data)) + data)
                tail += need
            else:
                fd = _posixshmem.shm_open(self._overflow_name(ov_tail), os.O_CREAT | os.O_TRUNC | os.O_RDWR, 0o600)
                try:
                    view = memoryview(data)
                    while view:
                        view = view[os.write(fd, view) :]
                finally:
                    os.close(fd)
                ov_tail += 1
            _HDR.pack_into(buf, 0, head, tail, count + 1, unfinished + 1, ov_head, ov_tail, join_waiters)
        self._items.release()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if not _take(self._items, queue_timeout(block, timeout)):
            raise queue.Empty
        buf = self._buf
        overflow = None
        with self._mutex:
            head, tail, count, unfinished, ov_head, ov_tail, join_waiters = _HDR.unpack_from(buf, 0)
            if head < tail:  # the ring holds the oldest items
                (size,) = _LEN.unpack(self._read(head, _LEN.size))
                data = self._read(head + _LEN.size, size)
                head += _LEN.size + size
            else:
                overflow = self._overflow_name(ov_head)
                ov_head += 1
            _HDR.pack_into(buf, 0, head, tail, count - 1, unfinished, ov_head, ov_tail, join_waiters)
        if overflow is not None:
            fd = _posixshmem.shm_open(overflow, os.O_RDONLY, 0o600)
            try:
                chunks = []
                while True:
                    chunk = os.read(fd, 1 << 20)
                    if not chunk:
                        break
                    chunks.append(chunk)
            finally:
                os.close(fd)
                _posixshmem.shm_unlink(overflow)
            data = b"".join(chunks)
        if self._places is not None:
            self._places.release()
        return pickle.loads(data)

    def put_nowait(self, item: Any) -> None:
        self.put(item, False)

    def get_nowait(self) -> Any:
        return self.get(False)

    def _fields(self) -> tuple[int, ...]:
        return _HDR.unpack_from(self._buf, 0)  # type: ignore[no-any-return]

    def qsize(self) -> int:
        return int(self._fields()[2])

    def empty(self) -> bool:
        return self.qsize() == 0

    def full(self) -> bool:
        return 0 < self.maxsize <= self.qsize()

    def task_done(self) -> None:
        with self._mutex:
            fields = list(_HDR.unpack_from(self._buf, 0))
            if fields[3] <= 0:
                raise ValueError("task_done() called too many times")
            fields[3] -= 1
            wake = 0
            if fields[3] == 0:
                wake, fields[6] = fields[6], 0
            _HDR.pack_into(self._buf, 0, *fields)
        for _ in range(wake):
            self._joined.release()

    def join(self) -> None:
        registered = False
        while True:
            with self._mutex:
                fields = list(_HDR.unpack_from(self._buf, 0))
                if fields[3] == 0:
                    if registered and fields[6] > 0:
                        fields[6] -= 1
                        _HDR.pack_into(self._buf, 0, *fields)
                    return
                if not registered:
                    fields[6] += 1
                    registered = True
                    _HDR.pack_into(self._buf, 0, *fields)
            if self._joined.acquire(True, 0.2):
                registered = False  # task_done took our registration when it woke us

    def __repr__(self) -> str:
        return f"<unifex process Queue maxsize={self.maxsize} qsize={self.qsize()}>"
