"""The core's promises, measured: the ``thread``, ``pool`` and ``serial`` kinds
beside :class:`concurrent.futures.ThreadPoolExecutor` of the same size, in the
same pytest-benchmark group.

Targets (medians, side by side in one run): ``thread`` submit+result within
1.10x of ThreadPoolExecutor and its ``map`` of 100,000 tiny tasks at least as
fast as ``ThreadPoolExecutor.map``; ``pool`` within 1.25x on both.
``serial`` shows the floor: the task run in the caller.

    python3 -m pytest benchmarks/test_core.py --benchmark-only
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

import unifex
from unifex._base import default_thread_count
from unifex.bench.workloads import noop, square

SIZE = default_thread_count()  # the default size of thread, pool and ThreadPoolExecutor alike
MAP_TASKS = 100_000
BATCH = 1_000

SUBJECTS = ["ThreadPoolExecutor", "thread", "pool", "serial"]


@pytest.fixture(params=SUBJECTS)
def executor(request: pytest.FixtureRequest) -> Iterator[Any]:
    """A started executor: every worker thread exists before anything is timed."""
    name = request.param
    ex: Any = ThreadPoolExecutor(max_workers=SIZE) if name == "ThreadPoolExecutor" else unifex.executor(name, size=SIZE)
    futs = [ex.submit(noop) for _ in range(4 * SIZE)]
    for f in futs:
        f.result(timeout=30)
    yield ex
    ex.shutdown() if name == "ThreadPoolExecutor" else ex.close()


@pytest.mark.benchmark(group="core: submit+result, one tiny task at a time")
def test_submit_result(benchmark: Any, executor: Any) -> None:
    submit = executor.submit

    def one() -> None:
        submit(noop).result()

    benchmark(one)


@pytest.mark.benchmark(group=f"core: submit {BATCH:,} tiny tasks, then gather")
def test_submit_batch(benchmark: Any, executor: Any) -> None:
    submit = executor.submit

    def batch() -> None:
        for f in [submit(noop) for _ in range(BATCH)]:
            f.result()

    benchmark.extra_info["tasks_per_round"] = BATCH
    benchmark.pedantic(batch, rounds=30, warmup_rounds=2)


@pytest.mark.benchmark(group=f"core: map of {MAP_TASKS:,} tiny tasks")
def test_map_throughput(benchmark: Any, executor: Any) -> None:
    def run() -> None:
        deque(executor.map(square, range(MAP_TASKS)), maxlen=0)

    benchmark.extra_info["tasks_per_round"] = MAP_TASKS
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    benchmark.extra_info["tasks_per_second"] = MAP_TASKS / benchmark.stats.stats.median
