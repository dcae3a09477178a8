"""Ecosystem clause 3: asyncio. ``await fut``, ``loop.run_in_executor``,
``asyncio.wrap_future``/``gather``, ``ex.amap`` and ``async def`` tasks work on
every kind; cancelling the awaiting asyncio task cancels a queued task."""

from __future__ import annotations

import asyncio
import concurrent.futures
from typing import Any

import pytest

from unifex.testing import tasks


def test_await_a_future(ex: Any) -> None:
    async def main() -> Any:
        return await ex.submit(tasks.square, 7)

    assert asyncio.run(asyncio.wait_for(main(), 60)) == 49


def test_run_in_executor_wrap_future_and_gather(ex: Any) -> None:
    async def main() -> Any:
        loop = asyncio.get_running_loop()
        a = await loop.run_in_executor(ex, tasks.add, 2, 3)
        b = await asyncio.wrap_future(ex.submit(tasks.square, 4))
        c = await asyncio.gather(ex.submit(tasks.square, 1), ex.submit(tasks.square, 2))
        return a, b, c

    assert asyncio.run(asyncio.wait_for(main(), 60)) == (5, 16, [1, 4])


def test_amap_yields_results_without_blocking_the_loop(ex: Any) -> None:
    ticks: list[int] = []

    async def ticker() -> None:
        while True:
            ticks.append(1)
            await asyncio.sleep(0)

    async def main() -> list[int]:
        tick = asyncio.create_task(ticker())
        try:
            return [r async for r in ex.amap(tasks.square, range(20))]
        finally:
            tick.cancel()

    assert asyncio.run(asyncio.wait_for(main(), 60)) == [i * i for i in range(20)]
    assert ticks  # the loop ran other coroutines meanwhile


def test_amap_unordered(ex: Any) -> None:
    async def main() -> list[int]:
        return [r async for r in ex.amap(tasks.square, range(10), ordered=False)]

    assert sorted(asyncio.run(asyncio.wait_for(main(), 60))) == [i * i for i in range(10)]


def test_async_def_task_runs_to_completion(ex: Any) -> None:
    assert ex.submit(tasks.async_square, 6).result(timeout=60) == 36
    assert ex.apply_async(tasks.async_square, (5,)).get(timeout=60) == 25
    assert list(ex.map(tasks.async_square, range(4))) == [0, 1, 4, 9]


@pytest.mark.requires("concurrent")
def test_cancelling_the_awaiting_task_cancels_a_queued_task(make_executor: Any) -> None:
    ex = make_executor(size=1)
    started, release = ex.Event(), ex.Event()
    busy = ex.submit(tasks.signal_and_wait, started, release, "busy")
    assert started.wait(30)
    queued = ex.submit(tasks.square, 3)

    async def main() -> None:
        waiter = asyncio.ensure_future(_await(queued))
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(asyncio.wait_for(main(), 60))
    assert queued.cancelled()
    release.set()
    assert busy.result(timeout=30) == "busy"


@pytest.mark.kinds("gevent", "greenlet", "process", "dask")  # the kinds that can stop one running task (dask: see tests/backends/test_dask_stop.py)
def test_cancelling_the_awaiting_task_stops_a_running_one(make_executor: Any) -> None:
    ex = make_executor(size=1)
    started, release = ex.Event(), ex.Event()
    running = ex.submit(tasks.signal_and_wait, started, release, "never")

    async def main() -> None:
        waiter = asyncio.ensure_future(_await(running))
        await asyncio.sleep(0)  # the awaiter reaches its ``await`` before it can be cancelled
        for _ in range(10_000):
            if started.is_set():
                break
            await asyncio.sleep(0.001)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(asyncio.wait_for(main(), 60))
    with pytest.raises(concurrent.futures.CancelledError, match="stopped"):
        running.result(timeout=30)


async def _await(fut: Any) -> Any:
    return await fut
