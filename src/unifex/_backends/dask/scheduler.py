"""The scheduler extension of the ``dask`` kind: every helper's state, kept on
the scheduler and changed by one handler, ``unifex_helper``, that runs each
operation alone on the scheduler's event loop (as distributed's own
``Lock``/``Event``/``Queue`` extensions do). Installed by :class:`HelperPlugin`
the first time an executor makes a helper.

Every line here runs in the scheduler process: the scheduler must be able to
import ``unifex``.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Any

from distributed.diagnostics.plugin import SchedulerPlugin

from .worker import dpickle

__all__ = ["ACK_OP", "PLUGIN_NAME", "HelperPlugin"]

PLUGIN_NAME = "unifex-helpers"
#: the stream message a worker sends when a task received a queue item
ACK_OP = "unifex-helper-ack"


class _Sem:
    tag = "sem"

    def __init__(self, value: int, bound: int | None) -> None:
        self.value = value
        self.bound = bound
        #: the worker address (or "" outside workers) of each unit taken, so a
        #: worker's death gives back what its tasks held
        self.holders: list[str] = []
        self.changed = asyncio.Condition()


class _RLockState:
    tag = "rlock"

    def __init__(self) -> None:
        self.owner: str | None = None
        self.owner_worker = ""
        self.count = 0
        self.changed = asyncio.Condition()


class _EventState:
    tag = "event"

    def __init__(self) -> None:
        self.flag = False
        self.sets = 0  # set() calls: a waiter woken by one returns True even if clear() came first
        self.changed = asyncio.Condition()


class _CondState:
    tag = "cond"

    def __init__(self) -> None:
        self.waiters: dict[str, asyncio.Future[None]] = {}


class _QueueState:
    tag = "queue"

    def __init__(self, maxsize: int) -> None:
        self.maxsize = maxsize
        self.items: deque[bytes] = deque()
        self.unfinished = 0
        self.changed = asyncio.Condition()
        #: items handed to a getter on a worker and not yet acknowledged: token -> (worker, item)
        self.reserved: dict[str, tuple[str, bytes]] = {}


async def _wait_until(cond: asyncio.Condition, ready: Callable[[], bool], timeout: float | None) -> bool:
    """Wait on ``cond`` (held) until ``ready()``; False when ``timeout`` passes."""
    if ready():
        return True
    if timeout is not None and timeout <= 0:
        return False
    try:
        await asyncio.wait_for(cond.wait_for(ready), timeout)
    except (asyncio.TimeoutError, TimeoutError):
        return ready()
    return True


class _HelperService:
    """Every helper's state on the scheduler; one handler, ``unifex_helper``,
    runs each operation alone on the scheduler's event loop."""

    def __init__(self, scheduler: Any) -> None:
        self.objects: dict[str, Any] = {}
        #: workers that left: a get of theirs still waiting here must not take an item
        self.dead: set[str] = set()
        scheduler.handlers["unifex_helper"] = self.handle
        scheduler.stream_handlers[ACK_OP] = self.ack

    async def handle(self, action: str, name: str, **kw: Any) -> Any:
        if action == "create":
            kind = kw["kind"]
            if kind == "sem":
                self.objects[name] = _Sem(kw["value"], kw["bound"])
            elif kind == "rlock":
                self.objects[name] = _RLockState()
            elif kind == "event":
                self.objects[name] = _EventState()
            elif kind == "cond":
                self.objects[name] = _CondState()
            elif kind == "queue":
                self.objects[name] = _QueueState(kw["maxsize"])
            else:
                self.objects[name] = {}
            return "ok"
        if action == "mark":  # a map batch re-run after a crash: the item its worker starts
            self.objects[name] = kw["index"]
            return "ok"
        if action == "read_mark":
            index = self.objects.pop(name, None)
            return index if isinstance(index, int) else None
        if action == "drop":
            for key in [k for k in self.objects if k.startswith(name)]:
                del self.objects[key]
            return "ok"
        obj = self.objects.get(name)
        if obj is None:
            return "gone"
        method: Callable[..., Any] = getattr(self, f"_{getattr(obj, 'tag', 'dict')}_{action}")
        result = method(obj, **kw)
        if asyncio.iscoroutine(result):
            result = await result
        return result

    # semaphores and locks
    async def _sem_acquire(self, s: _Sem, timeout: float | None, holder: str = "") -> str:
        async with s.changed:
            if not await _wait_until(s.changed, lambda: s.value > 0, timeout):
                return "timeout"
            s.value -= 1
            s.holders.append(holder)
            return "ok"

    async def _sem_release(self, s: _Sem, n: int, holder: str = "") -> str:
        async with s.changed:
            if s.bound is not None and s.value + n > s.bound:
                return "over"
            for _ in range(n):  # any party may release: prefer the releaser's own units
                if holder in s.holders:
                    s.holders.remove(holder)
                elif s.holders:
                    s.holders.pop(0)
            s.value += n
            s.changed.notify(n)
            return "ok"

    def _sem_value(self, s: _Sem) -> int:
        return s.value

    def _sem_bound(self, s: _Sem) -> int | None:
        return s.bound

    def _rlock_count(self, r: _RLockState, owner: str) -> int:
        """How deep ``owner`` holds the lock (0: not at all), for ``_recursion_count``."""
        return r.count if r.owner == owner else 0

    async def _rlock_acquire(self, r: _RLockState, owner: str, timeout: float | None, holder: str = "") -> str:
        async with r.changed:
            if r.owner == owner:
                r.count += 1
                return "ok"
            if not await _wait_until(r.changed, lambda: r.owner is None, timeout):
                return "timeout"
            r.owner, r.count, r.owner_worker = owner, 1, holder
            return "ok"

    async def _rlock_release(self, r: _RLockState, owner: str) -> str:
        async with r.changed:
            if r.owner != owner:
                return "not-owner"
            r.count -= 1
            if r.count == 0:
                r.owner = None
                r.changed.notify()
            return "ok"

    async def worker_gone(self, worker: str) -> None:
        """A worker left the cluster (it died, most often): give back every lock
        and semaphore unit its tasks held, so the other tasks go on. The data
        such a lock protected may be half-updated; the dead task's future says
        WorkerCrashedError. Queue items its tasks got but had not
        acknowledged go back to the front of their queue."""
        self.dead.add(worker)
        for state in list(self.objects.values()):
            if isinstance(state, _QueueState):
                back = [token for token, (holder, _) in state.reserved.items() if holder == worker]
                if back:
                    async with state.changed:
                        state.items.extendleft(reversed([state.reserved.pop(token)[1] for token in back]))
                        state.changed.notify_all()
                continue
            if isinstance(state, _Sem) and worker in state.holders:
                async with state.changed:
                    held = state.holders.count(worker)
                    state.holders = [h for h in state.holders if h != worker]
                    state.value += held
                    state.changed.notify(held)
            elif isinstance(state, _RLockState) and state.owner is not None and state.owner_worker == worker:
                async with state.changed:
                    state.owner, state.count, state.owner_worker = None, 0, ""
                    state.changed.notify()

    # events
    async def _event_set(self, e: _EventState) -> str:
        async with e.changed:
            e.flag = True
            e.sets += 1
            e.changed.notify_all()
        return "ok"

    def _event_clear(self, e: _EventState) -> str:
        e.flag = False
        return "ok"

    def _event_is_set(self, e: _EventState) -> bool:
        return e.flag

    async def _event_wait(self, e: _EventState, timeout: float | None) -> str:
        async with e.changed:
            seen = e.sets
            return "ok" if await _wait_until(e.changed, lambda: e.flag or e.sets != seen, timeout) else "timeout"

    # conditions: the lock lives here too, so release-wait-reacquire is one step
    def _owns(self, lock: str, owner: str | None) -> bool:
        state = self.objects.get(lock)
        if isinstance(state, _RLockState):
            return state.owner == owner
        return isinstance(state, _Sem) and state.value == 0

    async def _cond_cond_wait(self, c: _CondState, token: str, lock: str, owner: str | None, timeout: float | None, holder: str = "") -> str:
        if not self._owns(lock, owner):
            return "not-owner"
        state = self.objects[lock]
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        c.waiters[token] = waiter
        saved = 1
        if isinstance(state, _RLockState):
            saved = state.count
            async with state.changed:
                state.owner, state.count = None, 0
                state.changed.notify()
        else:
            await self._sem_release(state, 1, holder)
        notified = True
        try:
            if timeout is None:
                await waiter
            else:
                await asyncio.wait_for(asyncio.shield(waiter), timeout)
        except (asyncio.TimeoutError, TimeoutError):
            notified = waiter.done()
        finally:
            c.waiters.pop(token, None)
        if isinstance(state, _RLockState):
            await self._rlock_acquire(state, owner or "", None, holder)
            state.count = saved
        else:
            await self._sem_acquire(state, None, holder)
        return "ok" if notified else "timeout"

    def _cond_notify(self, c: _CondState, n: int, lock: str, owner: str | None) -> str:
        if not self._owns(lock, owner):
            return "not-owner"
        woken = 0
        for token in list(c.waiters):
            if n >= 0 and woken >= n:
                break
            waiter = c.waiters.pop(token)
            if not waiter.done():
                waiter.set_result(None)
                woken += 1
        return "ok"

    # queues
    async def _queue_put(self, q: _QueueState, item: bytes, timeout: float | None) -> str:
        async with q.changed:
            if not await _wait_until(q.changed, lambda: q.maxsize <= 0 or len(q.items) < q.maxsize, timeout):
                return "timeout"
            q.items.append(item)
            q.unfinished += 1
            q.changed.notify_all()
            return "ok"

    async def _queue_get(self, q: _QueueState, timeout: float | None, holder: str = "", token: str = "") -> Any:
        """A get from a task on a worker (``holder``) keeps the item reserved
        until the worker acknowledges it (:meth:`ack`): if the worker dies first,
        the item goes back to the front of the queue instead of being lost with
        a reply that nobody reads."""
        async with q.changed:
            if not await _wait_until(q.changed, lambda: bool(q.items), timeout):
                return "timeout"
            if holder in self.dead:  # the getter died while it waited here
                return "timeout"
            item = q.items.popleft()
            if holder and token:
                q.reserved[token] = (holder, item)
            q.changed.notify_all()
            return item

    def ack(self, name: str = "", token: str = "", **_: Any) -> None:
        """A worker's task received the item it got (a fire-and-forget message on
        the worker's stream)."""
        q = self.objects.get(name)
        if isinstance(q, _QueueState):
            q.reserved.pop(token, None)

    def _queue_qsize(self, q: _QueueState) -> int:
        return len(q.items)

    def _queue_full(self, q: _QueueState) -> bool:
        return 0 < q.maxsize <= len(q.items)

    def _queue_maxsize(self, q: _QueueState) -> int:
        return max(0, q.maxsize)

    async def _queue_set_maxsize(self, q: _QueueState, maxsize: int) -> str:
        async with q.changed:
            q.maxsize = maxsize
            q.changed.notify_all()  # a larger queue has room for waiting puts
        return "ok"

    async def _queue_task_done(self, q: _QueueState) -> str:
        async with q.changed:
            if q.unfinished <= 0:
                return "too-many"
            q.unfinished -= 1
            q.changed.notify_all()
            return "ok"

    async def _queue_join(self, q: _QueueState, timeout: float | None) -> str:
        async with q.changed:
            return "ok" if await _wait_until(q.changed, lambda: q.unfinished == 0, timeout) else "timeout"

    # dicts: keys unpickled here so that equal keys meet; values stay opaque bytes
    def _dict_getitem(self, d: dict[Any, tuple[bytes, bytes]], key: bytes) -> bytes | None:
        entry = d.get(dpickle.loads(key))
        return None if entry is None else entry[1]

    def _dict_setitem(self, d: dict[Any, tuple[bytes, bytes]], key: bytes, value: bytes) -> str:
        d[dpickle.loads(key)] = (key, value)
        return "ok"

    def _dict_delitem(self, d: dict[Any, tuple[bytes, bytes]], key: bytes) -> str:
        return "ok" if d.pop(dpickle.loads(key), None) is not None else "missing"

    def _dict_pop(self, d: dict[Any, tuple[bytes, bytes]], key: bytes) -> bytes | None:
        entry = d.pop(dpickle.loads(key), None)
        return None if entry is None else entry[1]

    def _dict_setdefault(self, d: dict[Any, tuple[bytes, bytes]], key: bytes, value: bytes) -> bytes:
        return d.setdefault(dpickle.loads(key), (key, value))[1]

    def _dict_update(self, d: dict[Any, tuple[bytes, bytes]], pairs: list[tuple[bytes, bytes]]) -> str:
        for key, value in pairs:
            d[dpickle.loads(key)] = (key, value)
        return "ok"

    def _dict_contains(self, d: dict[Any, tuple[bytes, bytes]], key: bytes) -> bool:
        return dpickle.loads(key) in d

    def _dict_keys(self, d: dict[Any, tuple[bytes, bytes]]) -> list[bytes]:
        return [k for k, _ in d.values()]

    def _dict_items(self, d: dict[Any, tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
        return list(d.values())

    def _dict_len(self, d: dict[Any, tuple[bytes, bytes]]) -> int:
        return len(d)

    def _dict_clear(self, d: dict[Any, tuple[bytes, bytes]]) -> str:
        d.clear()
        return "ok"


class HelperPlugin(SchedulerPlugin):  # type: ignore[misc]
    """Installs :class:`_HelperService` on the scheduler once."""

    idempotent = True
    name = PLUGIN_NAME

    async def start(self, scheduler: Any) -> None:
        if "unifex_helper" not in scheduler.handlers:
            scheduler.extensions["unifex_helpers"] = _HelperService(scheduler)

    def remove_worker(self, scheduler: Any, worker: str, **kwargs: Any) -> Any:
        service = scheduler.extensions.get("unifex_helpers")
        return service.worker_gone(worker) if service is not None else None
