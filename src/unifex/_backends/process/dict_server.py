"""The ``process`` kind's shared dict: a server thread in the parent owns the
real dicts of one executor; workers talk to it over a Unix socket (one
connection per worker process), the parent calls it directly.

    worker task: d[k] = v ──► SharedDict._call ──► Unix socket ──► parent: _DictServer thread
                                                                     (one poll loop, every dict)
    parent code: d[k] = v ──► _DictServer.call (under its lock, no socket)

Each operation is atomic; values are copies, as with a ``Manager().dict()``.
"""

from __future__ import annotations

import itertools
import os
import pickle
import secrets
import select
import threading
from collections.abc import Iterator, MutableMapping
from multiprocessing.connection import Client, Connection, Listener
from typing import Any

from ..._errors import ExecutorClosedError
from ..._remote import dumps
from .helpers import _closed, _process_lock

__all__ = ["SharedDict"]

# per process: one connection to each dict server this process talks to
_clients: dict[str, tuple[Connection, threading.Lock]] = {}


def _after_fork_in_child() -> None:
    _clients.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _apply(store: dict[Any, Any], op: str, args: tuple[Any, ...]) -> Any:
    if op == "getitem":
        return store[args[0]]
    if op == "setitem":
        store[args[0]] = args[1]
        return None
    if op == "delitem":
        del store[args[0]]
        return None
    if op == "len":
        return len(store)
    if op == "contains":
        return args[0] in store
    if op == "keys":
        return list(store)
    if op == "items":
        return list(store.items())
    if op == "values":
        return list(store.values())
    if op == "get":
        return store.get(*args)
    if op == "pop":
        return store.pop(*args)
    if op == "popitem":
        return store.popitem()
    if op == "setdefault":
        return store.setdefault(*args)
    if op == "update":
        store.update(args[0])
        return None
    if op == "clear":
        store.clear()
        return None
    if op == "copy":
        return dict(store)
    raise ValueError(f"unknown dict operation {op!r}")


class _DictServer:
    """A thread in the parent serving every dict of one executor: one select
    loop over the listening Unix socket and one connection per worker process."""

    def __init__(self) -> None:
        self.authkey = secrets.token_bytes(32)
        self.listener = Listener(family="AF_UNIX", authkey=self.authkey)
        self.address: str = self.listener.address  # type: ignore[assignment]
        self.pid = os.getpid()
        self.stores: dict[int, dict[Any, Any]] = {}
        self.lock = threading.Lock()
        self._ids = itertools.count()
        self._wake_r, self._wake_w = os.pipe()
        self._stopping = False
        self.thread = threading.Thread(target=self._serve, name="unifex-process-dict-server", daemon=True)
        self.thread.start()

    def new_dict(self, initial: dict[Any, Any]) -> SharedDict:
        with self.lock:
            did = next(self._ids)
            self.stores[did] = initial
        return SharedDict(self.address, self.authkey, did, self)

    def call(self, did: int, op: str, args: tuple[Any, ...]) -> Any:
        with self.lock:
            return _apply(self.stores[did], op, args)

    def _serve(self) -> None:
        poller = select.poll()
        listen_fd = self.listener._listener._socket.fileno()  # type: ignore[attr-defined]
        poller.register(listen_fd, select.POLLIN)
        poller.register(self._wake_r, select.POLLIN)
        conns: dict[int, Connection] = {}
        try:
            while not self._stopping:
                for fd, _ in poller.poll():
                    if fd == self._wake_r:
                        continue
                    if fd == listen_fd:
                        try:
                            conn = self.listener.accept()
                        except Exception:
                            continue
                        conns[conn.fileno()] = conn
                        poller.register(conn.fileno(), select.POLLIN)
                        continue
                    conn = conns[fd]
                    try:
                        did, op, args = pickle.loads(conn.recv_bytes())
                    except Exception:
                        poller.unregister(fd)
                        del conns[fd]
                        conn.close()
                        continue
                    try:
                        reply = (True, self.call(did, op, args))
                    except Exception as exc:
                        reply = (False, exc)
                    try:
                        conn.send_bytes(dumps(reply))
                    except Exception as exc:
                        try:
                            conn.send_bytes(pickle.dumps((False, TypeError(f"the dict value could not be pickled: {exc}"))))
                        except OSError:
                            pass
        finally:
            for conn in conns.values():
                conn.close()

    def stop(self) -> None:
        self._stopping = True
        os.write(self._wake_w, b"\0")
        self.thread.join()
        self.listener.close()
        os.close(self._wake_r)
        os.close(self._wake_w)


def _rebuild_dict(address: str, authkey: bytes, did: int) -> SharedDict:
    return SharedDict(address, authkey, did, None)


class SharedDict(MutableMapping[Any, Any]):
    """A dict shared by the executor's processes; each operation is atomic and
    values are copies (mutating a value you read does not change the shared one)."""

    __slots__ = ("_address", "_authkey", "_did", "_server")

    def __init__(self, address: str, authkey: bytes, did: int, server: _DictServer | None) -> None:
        self._address = address
        self._authkey = authkey
        self._did = did
        self._server = server

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild_dict, (self._address, self._authkey, self._did))

    def _call(self, op: str, *args: Any) -> Any:
        server = self._server
        if server is not None and server.pid == os.getpid():
            return server.call(self._did, op, args)
        entry = _clients.get(self._address)
        if entry is None:
            with _process_lock:
                entry = _clients.get(self._address)
                if entry is None:
                    try:
                        conn = Client(self._address, family="AF_UNIX", authkey=self._authkey)
                    except OSError:
                        raise _closed("dict") from None
                    entry = _clients[self._address] = (conn, threading.Lock())
        conn, lock = entry
        with lock:
            try:
                conn.send_bytes(dumps((self._did, op, args)))
                ok, value = pickle.loads(conn.recv_bytes())
            except (EOFError, OSError):
                _clients.pop(self._address, None)
                raise _closed("dict") from None
        if not ok:
            raise value
        return value

    def __getitem__(self, key: Any) -> Any:
        return self._call("getitem", key)

    def __setitem__(self, key: Any, value: Any) -> None:
        self._call("setitem", key, value)

    def __delitem__(self, key: Any) -> None:
        self._call("delitem", key)

    def __len__(self) -> int:
        return int(self._call("len"))

    def __iter__(self) -> Iterator[Any]:
        return iter(self._call("keys"))

    def __contains__(self, key: object) -> bool:
        return bool(self._call("contains", key))

    def get(self, key: Any, default: Any = None) -> Any:
        return self._call("get", key, default)

    def pop(self, key: Any, *default: Any) -> Any:
        return self._call("pop", key, *default)

    def popitem(self) -> tuple[Any, Any]:
        return self._call("popitem")  # type: ignore[no-any-return]

    def setdefault(self, key: Any, default: Any = None) -> Any:
        return self._call("setdefault", key, default)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        self._call("update", dict(other, **kwargs))

    def clear(self) -> None:
        self._call("clear")

    def keys(self) -> list[Any]:  # type: ignore[override]
        return self._call("keys")  # type: ignore[no-any-return]

    def items(self) -> list[tuple[Any, Any]]:  # type: ignore[override]
        return self._call("items")  # type: ignore[no-any-return]

    def values(self) -> list[Any]:  # type: ignore[override]
        return self._call("values")  # type: ignore[no-any-return]

    def copy(self) -> dict[Any, Any]:
        return self._call("copy")  # type: ignore[no-any-return]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, SharedDict):
            other = other.copy()
        return self.copy() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        try:
            return f"<unifex process dict {self.copy()!r}>"
        except ExecutorClosedError:
            return "<unifex process dict (closed)>"
