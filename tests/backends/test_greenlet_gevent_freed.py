"""The cooperative kinds (``greenlet``, ``gevent``) keep nothing of a finished
task once the caller dropped it: no worker greenlet, scheduler slot, run queue,
timer or first-switch argument holds its future or its result (CPython's
``test_free_reference``, issue #14406, asks this of ``map``).

Each test drops the last reference the caller holds, collects, and checks a
weak reference at once: on these kinds every release happens in the caller's
thread before the caller is woken, so there is nothing asynchronous to wait for."""

from __future__ import annotations

import gc
import weakref
from typing import Any

import pytest

import unifex

pytestmark = pytest.mark.timeout(60)

# the greenlet kind under FIFO order, under a seeded schedule, and on the virtual clock
KINDS = [
    pytest.param("gevent", {}, id="gevent"),
    pytest.param("greenlet", {}, id="greenlet"),
    pytest.param("greenlet", {"seed": 3}, id="greenlet-seed3"),
    pytest.param("greenlet", {"seed": 11, "clock": "virtual"}, id="greenlet-seed11-virtual"),
]


class Payload:
    """A result that can be weakly referenced."""


def make_payload(_: object = None) -> Payload:
    return Payload()


def yield_then_make(i: int) -> Payload:
    for _ in range(i % 3):  # tasks interleave: some finish while others are parked
        unifex.sleep(0)
    return Payload()


class PayloadError(Exception):
    pass


def fail(_: object = None) -> None:
    raise PayloadError("dropped with its future")


def assert_freed(ref: weakref.ref[Any], what: str) -> None:
    gc.collect()
    assert ref() is None, f"{what} is still alive: held by {[type(r).__name__ for r in gc.get_referrers(ref())]}"


@pytest.mark.parametrize(("kind", "options"), KINDS)
@pytest.mark.parametrize("fn", [make_payload, yield_then_make])
def test_map_keeps_no_result_the_caller_dropped(kind: str, options: dict[str, Any], fn: Any) -> None:
    with unifex.executor(kind, size=5, **options) as ex:
        seen = 0
        for obj in ex.map(fn, range(12)):
            ref = weakref.ref(obj)
            del obj
            assert_freed(ref, f"result {seen}")
            seen += 1
        assert seen == 12


@pytest.mark.parametrize(("kind", "options"), KINDS)
def test_unordered_map_keeps_no_result_the_caller_dropped(kind: str, options: dict[str, Any]) -> None:
    with unifex.executor(kind, size=3, **options) as ex:
        seen = 0
        for obj in ex.map(yield_then_make, range(9), ordered=False):
            ref = weakref.ref(obj)
            del obj
            assert_freed(ref, f"result {seen}")
            seen += 1
        assert seen == 9


@pytest.mark.parametrize(("kind", "options"), KINDS)
@pytest.mark.parametrize("timeout", [None, 30.0], ids=["no-timeout", "per-task-timeout"])
def test_a_dropped_future_and_its_result_are_freed(kind: str, options: dict[str, Any], timeout: float | None) -> None:
    with unifex.executor(kind, size=2, **options) as ex:
        # the first task of each worker greenlet too (a greenlet keeps its first switch's arguments)
        futs = [ex.apply_async(yield_then_make, (i,), timeout=timeout) for i in range(4)]
        results = [f.result(timeout=30) for f in futs]
        fut_refs = [weakref.ref(f) for f in futs]
        result_refs = [weakref.ref(r) for r in results]
        del futs, results
        for i, (fut_ref, result_ref) in enumerate(zip(fut_refs, result_refs, strict=True)):
            assert_freed(fut_ref, f"future {i}")
            assert_freed(result_ref, f"result {i}")
        assert ex.submit(make_payload).result(timeout=30) is not None  # the workers are still fine


@pytest.mark.parametrize(("kind", "options"), KINDS)
def test_a_dropped_failed_future_and_its_exception_are_freed(kind: str, options: dict[str, Any]) -> None:
    with unifex.executor(kind, size=2, **options) as ex:
        fut = ex.submit(fail)
        exc = fut.exception(timeout=30)
        assert isinstance(exc, PayloadError)
        fut_ref, exc_ref = weakref.ref(fut), weakref.ref(exc)
        del fut, exc
        assert_freed(fut_ref, "the failed future")
        assert_freed(exc_ref, "its exception")
