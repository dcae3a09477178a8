"""Client side: results that stay on the cluster until asked for (issue 11.3).

A value whose pickle is at least the executor's ``zero_copy_threshold`` stays
in its worker's memory (a :class:`~.worker.HeldOutcome`). The collector's
:class:`_Completed` tells it by the type the scheduler reports and does not
gather it; the future (a :class:`_HeldFuture` from dispatch on) holds a
:class:`_Held` placeholder, and its first ``result()`` or ``await`` fetches the
value and releases the cluster's copy. (Used by :mod:`.client`; runs in the
submitting process.)"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, TypeVar

import distributed as _distributed

from ..._errors import SerializationError
from ..._future import Future
from .worker import HeldOutcome

__all__ = ["_HELD", "_Completed", "_Held", "_HeldFuture", "_can_hold"]

#: distributed is only partly annotated; its API is used here as dynamic
distributed: Any = _distributed

T = TypeVar("T")


#: what the collector receives for a task whose value stays on the cluster
_HELD = object()


class _Completed(distributed.as_completed):  # type: ignore[misc]
    """``distributed.as_completed(with_results=True)`` that gathers every
    result except a :class:`HeldOutcome` (told by the type the scheduler
    reports with the key), which stays on the cluster until asked for."""

    async def _track_future(self, future: Any, fetch: bool = False) -> None:
        try:
            await distributed.client._wait(future)
        except distributed.client.CancelledError:
            pass
        if future.type is HeldOutcome and not fetch:
            result: Any = _HELD
        else:
            try:
                result = await future._result(raiseit=False)
            except distributed.client.CancelledError as exc:
                result = exc
        with self.lock:
            if future in self.futures:
                self.futures[future] -= 1
                if not self.futures[future]:
                    del self.futures[future]
                self.queue.put_nowait((future, result))
                async with self.condition:
                    self.condition.notify()
                with self.thread_condition:
                    self.thread_condition.notify()

    def fetch(self, future: Any) -> None:
        """Yield ``future`` (again) with its value, gathered now, whatever its type."""
        with self.lock:
            self.futures[future] += 1
        self.loop.add_callback(self._track_future, future, True)


#: modules whose callbacks read a future through ``result()`` (or not at all):
#: a future with only these (and the user's) may hold its value on the cluster
_RESULT_READERS = frozenset({"unifex._future", "unifex._map"})


def _can_hold(fut: Future[Any]) -> bool:
    """Whether ``fut`` may keep its value on the cluster until ``result()``:
    a plain future whose callbacks do not read ``_result`` directly (retries,
    ``apply_async`` callbacks) nor fetch it in an event loop (asyncio's
    ``wrap_future``, which would block the loop while the bytes travel)."""
    if type(fut) is not _HeldFuture or fut._pool_ran is not None:
        return False
    for cb in list.__iter__(fut._callbacks or []):
        module = getattr(cb, "__module__", None) or type(cb).__module__ or ""
        if module not in _RESULT_READERS and module.partition(".")[0] in ("unifex", "asyncio"):
            return False
    return True


class _Held:
    """In ``Future._result`` of a :class:`_HeldFuture`: the dask future of the
    value that stays on the cluster, until the first ``result()`` fetches it."""

    __slots__ = ("dfut", "direct", "error", "lock")

    def __init__(self, dfut: Any, direct: bool | None) -> None:
        self.dfut = dfut
        self.direct = direct  # straight from the worker (about 4x faster for 64 MB than through the scheduler)
        self.lock = threading.Lock()
        self.error: BaseException | None = None

    def take(self, fut: Future[Any], timeout: float | None) -> Any:
        """Fetch the value into ``fut`` (once) and release the cluster's copy."""
        with self.lock:
            if fut._result is not self:  # another thread fetched it meanwhile
                return fut._result
            if self.error is None:
                try:
                    client = self.dfut.client
                    [outcome] = client.sync(client._gather, [self.dfut], direct=self.direct, callback_timeout=timeout)
                except (TimeoutError, asyncio.TimeoutError):
                    if self.dfut.done():
                        raise
                    raise TimeoutError(f"the task's value (kept on the cluster) did not arrive within {timeout} s; it is still there") from None
                except Exception as exc:
                    self.error = exc
                else:
                    self.settle(fut, outcome)
                    return fut._result
            raise self.error

    def settle(self, fut: Future[Any], outcome: Any) -> None:
        """``fut``'s value from the fetched ``outcome`` (called with ``lock`` held)."""
        dfut, self.dfut = self.dfut, None
        try:
            ok, value, _tb = outcome.loads()
        except Exception as exc:
            self.error = SerializationError(
                f"the result of a task could not be deserialized here: {exc!r}; the class of the value must be importable in the submitting process"
            )
            raise self.error from exc
        finally:
            with contextlib.suppress(Exception):
                dfut.release()
        fut._result = value if ok else None  # the worker holds values only, never errors


class _HeldFuture(Future[T]):
    """The future of a task whose value may stay on the cluster when it ends
    (the class of every plain future the executor runs, set at dispatch): the
    first ``result()`` (or ``await``) fetches it. ``done()``, ``exception()``
    (None) and waiting work without the bytes."""

    __slots__ = ()

    def result(self, timeout: float | None = None) -> T:
        value: Any = super().result(timeout)
        if type(value) is _Held:
            return value.take(self, timeout)  # type: ignore[no-any-return]
        return value  # type: ignore[no-any-return]

    def __await__(self) -> Any:
        if type(self._result) is _Held:
            return self._fetch_then_await().__await__()
        return super().__await__()

    async def _fetch_then_await(self) -> T:
        # the bytes travel in a thread of the loop's default executor, not in the loop
        return await asyncio.get_running_loop().run_in_executor(None, self.result)
