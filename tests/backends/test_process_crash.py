"""Crash isolation: a worker that dies fails only its own task, names the exit
code or signal, and is replaced; map chunks fail at the crashed item."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from typing import Any

import pytest
from _process_util import START_METHODS, crash_at, exit_with, kill_self, record_then_crash_at, segfault, wait_gone

import unifex
from unifex.testing import tasks


@pytest.fixture(params=START_METHODS)
def ex(request: pytest.FixtureRequest) -> Iterator[Any]:
    executor = unifex.executor("process", size=2, start_method=request.param)
    yield executor
    executor.terminate()


@pytest.mark.timeout(60)
def test_exit_code_fails_only_that_task(ex: Any) -> None:
    before = ex.submit(tasks.square, 2)
    crashed = ex.submit(exit_with, 3)
    after = [ex.submit(tasks.square, i) for i in range(10)]
    with pytest.raises(unifex.WorkerCrashedError) as info:
        crashed.result(timeout=30)
    err = info.value
    assert err.exitcode == 3 and isinstance(err.pid, int)
    assert f"worker pid {err.pid} exited with exit code 3 while running exit_with(3)" in str(err)
    assert before.result(timeout=30) == 4
    assert [f.result(timeout=30) for f in after] == [i * i for i in range(10)]
    assert err.pid not in {ex.submit(tasks.getpid).result(timeout=30) for _ in range(4)}
    assert not wait_gone([err.pid], 5)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(("fn", "signum"), [(kill_self, signal.SIGKILL), (segfault, signal.SIGSEGV)])
def test_signal_is_named(ex: Any, fn: Any, signum: int) -> None:
    fut = ex.submit(fn, 1)
    with pytest.raises(unifex.WorkerCrashedError) as info:
        fut.result(timeout=30)
    assert info.value.exitcode == -signum
    assert f"was killed by {signal.Signals(signum).name} while running {fn.__name__}(1)" in str(info.value)
    assert ex.submit(tasks.square, 5).result(timeout=30) == 25


@pytest.mark.timeout(60)
def test_worker_killed_while_idle_is_replaced(ex: Any) -> None:
    pids = {ex.submit(tasks.getpid).result(timeout=30) for _ in range(2)}
    for pid in pids:
        os.kill(pid, signal.SIGKILL)
    assert not wait_gone(pids, 10)
    assert [f.result(timeout=30) for f in [ex.submit(tasks.square, i) for i in range(6)]] == [i * i for i in range(6)]


@pytest.mark.timeout(60)
def test_many_crashes_never_break_the_executor(ex: Any) -> None:
    futures = [ex.submit(exit_with, 1) if i % 3 == 0 else ex.submit(tasks.square, i) for i in range(12)]
    for i, fut in enumerate(futures):
        if i % 3 == 0:
            assert isinstance(fut.exception(timeout=30), unifex.WorkerCrashedError)
        else:
            assert fut.result(timeout=30) == i * i


@pytest.mark.timeout(60)
def test_crash_in_a_map_chunk_fails_at_that_item(ex: Any) -> None:
    got = []
    with pytest.raises(unifex.WorkerCrashedError, match=r"crash_at\(13, 13\)") as info:
        for value in ex.map(crash_at, range(40), [13] * 40, chunksize=10):
            got.append(value)
    assert got == [x * 10 for x in range(13)]
    assert info.value.exitcode == 7


@pytest.mark.timeout(60)
def test_crash_in_a_chunk_reruns_only_the_items_before_it(ex: Any) -> None:
    runs = ex.dict()
    with pytest.raises(unifex.WorkerCrashedError):
        list(ex.map(record_then_crash_at, range(8), [5] * 8, [runs] * 8, chunksize=8))
    counts: dict[int, int] = {}
    for x in runs.values():
        counts[x] = counts.get(x, 0) + 1
    # The worker marks progress once per block of items (exact positions would
    # cost as much as a tiny task), so after the first crash the batch runs
    # again with exact positions: 5 crashes again, and 0-4, whose results died
    # twice, run a third time. 6 and 7 never run: map stops at its first error.
    assert counts == {0: 3, 1: 3, 2: 3, 3: 3, 4: 3, 5: 2}


@pytest.mark.timeout(60)
def test_unordered_map_raises_the_crash(ex: Any) -> None:
    with pytest.raises(unifex.WorkerCrashedError):
        list(ex.map(crash_at, range(20), [3] * 20, ordered=False))
