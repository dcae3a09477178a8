"""The ``process`` kind beside the standard library, same group, same run.

Targets (medians, side by side): ``map`` of 100,000 tiny tasks at least as
fast as ``multiprocessing.Pool.map`` and 10x faster than
``ProcessPoolExecutor.map`` with its default chunksize; submit+result within
1.2x of ``ProcessPoolExecutor``; a ``Lock`` acquire+release from a worker 10x
faster than a ``Manager().Lock()`` proxy; ``Queue`` put+get at least as fast
as ``multiprocessing.Queue``. Every pool has 2 workers, started before timing.

    python3 -m pytest benchmarks/test_process.py --benchmark-only
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

import unifex
from unifex.bench.workloads import dict_ops, lock_ops, noop, queue_ops, square

SIZE = 2
MAP_TASKS = 100_000
BATCH = 200
HELPER_OPS = 5_000
CTX = multiprocessing.get_context("forkserver")


def _warm(ex: Any) -> None:
    for f in [ex.submit(noop) for _ in range(4 * SIZE)]:
        f.result(timeout=60)


@pytest.fixture(scope="module")
def unifex_ex() -> Iterator[Any]:
    ex = unifex.executor("process", size=SIZE, start_method="forkserver")
    _warm(ex)
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def ppe() -> Iterator[ProcessPoolExecutor]:
    ex = ProcessPoolExecutor(SIZE, mp_context=CTX)
    _warm(ex)
    yield ex
    ex.shutdown()


@pytest.fixture(scope="module")
def mp_pool() -> Iterator[Any]:
    pool = CTX.Pool(SIZE)
    pool.map(square, range(100))
    yield pool
    pool.close()
    pool.join()


@pytest.fixture(scope="module")
def manager() -> Iterator[Any]:
    with CTX.Manager() as m:
        yield m


# -- per task ---------------------------------------------------------------------


@pytest.mark.benchmark(group="process: submit+result, one tiny task at a time")
def test_submit_result_unifex(benchmark: Any, unifex_ex: Any) -> None:
    benchmark(lambda: unifex_ex.submit(noop).result())


@pytest.mark.benchmark(group="process: submit+result, one tiny task at a time")
def test_submit_result_ProcessPoolExecutor(benchmark: Any, ppe: Any) -> None:
    benchmark(lambda: ppe.submit(noop).result())


@pytest.mark.benchmark(group="process: submit 200 tiny tasks, then gather")
def test_batch_unifex(benchmark: Any, unifex_ex: Any) -> None:
    benchmark(lambda: [f.result() for f in [unifex_ex.submit(noop) for _ in range(BATCH)]])


@pytest.mark.benchmark(group="process: submit 200 tiny tasks, then gather")
def test_batch_ProcessPoolExecutor(benchmark: Any, ppe: Any) -> None:
    benchmark(lambda: [f.result() for f in [ppe.submit(noop) for _ in range(BATCH)]])


@pytest.mark.benchmark(group="process: submit 200 tiny tasks, then gather")
def test_batch_Pool_apply_async(benchmark: Any, mp_pool: Any) -> None:
    benchmark(lambda: [r.get() for r in [mp_pool.apply_async(noop) for _ in range(BATCH)]])


GATHER = 4_000
GATHER_GROUP = "process: submit 4,000 no-op tasks one by one, then gather (issue 11, point 5: <= 1.0x Pool.apply_async)"


@pytest.mark.benchmark(group=GATHER_GROUP)
def test_gather_unifex(benchmark: Any, unifex_ex: Any) -> None:
    benchmark.pedantic(lambda: [f.result() for f in [unifex_ex.submit(noop) for _ in range(GATHER)]], rounds=5, warmup_rounds=1)


@pytest.mark.benchmark(group=GATHER_GROUP)
def test_gather_Pool_apply_async(benchmark: Any, mp_pool: Any) -> None:
    benchmark.pedantic(lambda: [r.get() for r in [mp_pool.apply_async(noop) for _ in range(GATHER)]], rounds=5, warmup_rounds=1)


# -- map --------------------------------------------------------------------------


@pytest.mark.benchmark(group="process: map of 100,000 x*x")
def test_map_unifex(benchmark: Any, unifex_ex: Any) -> None:
    result = benchmark.pedantic(lambda: list(unifex_ex.map(square, range(MAP_TASKS))), rounds=5, warmup_rounds=1)
    assert result[-1] == (MAP_TASKS - 1) ** 2


@pytest.mark.benchmark(group="process: map of 100,000 x*x")
def test_map_Pool(benchmark: Any, mp_pool: Any) -> None:
    benchmark.pedantic(lambda: mp_pool.map(square, range(MAP_TASKS)), rounds=5, warmup_rounds=1)


@pytest.mark.benchmark(group="process: map of 100,000 x*x")
def test_map_ProcessPoolExecutor_default_chunksize(benchmark: Any, ppe: Any) -> None:
    benchmark.pedantic(lambda: list(ppe.map(square, range(MAP_TASKS))), rounds=1, iterations=1)


# -- helpers ----------------------------------------------------------------------


@pytest.mark.benchmark(group="process helpers: 5,000 Lock acquire+release in a worker")
def test_lock_unifex(benchmark: Any, unifex_ex: Any) -> None:
    lock = unifex_ex.Lock()
    benchmark(lambda: unifex_ex.submit(lock_ops, lock, HELPER_OPS).result())


@pytest.mark.benchmark(group="process helpers: 5,000 Lock acquire+release in a worker")
def test_lock_Manager(benchmark: Any, unifex_ex: Any, manager: Any) -> None:
    lock = manager.Lock()
    benchmark.pedantic(lambda: unifex_ex.submit(lock_ops, lock, HELPER_OPS).result(), rounds=3)


@pytest.mark.benchmark(group="process helpers: 5,000 Queue put+get")
def test_queue_unifex_in_a_worker(benchmark: Any, unifex_ex: Any) -> None:
    q = unifex_ex.Queue()
    benchmark(lambda: unifex_ex.submit(queue_ops, q, HELPER_OPS).result())


@pytest.mark.benchmark(group="process helpers: 5,000 Queue put+get")
def test_queue_unifex_in_the_parent(benchmark: Any, unifex_ex: Any) -> None:
    q = unifex_ex.Queue()
    benchmark(lambda: queue_ops(q, HELPER_OPS))


@pytest.mark.benchmark(group="process helpers: 5,000 Queue put+get")
def test_queue_multiprocessing_in_the_parent(benchmark: Any) -> None:
    q = CTX.Queue()
    benchmark(lambda: queue_ops(q, HELPER_OPS))
    q.close()
    q.join_thread()


@pytest.mark.benchmark(group="process helpers: 5,000 dict set+get in a worker")
def test_dict_unifex(benchmark: Any, unifex_ex: Any) -> None:
    d = unifex_ex.dict()
    benchmark.pedantic(lambda: unifex_ex.submit(dict_ops, d, HELPER_OPS).result(), rounds=3)


@pytest.mark.benchmark(group="process helpers: 5,000 dict set+get in a worker")
def test_dict_Manager(benchmark: Any, unifex_ex: Any, manager: Any) -> None:
    d = manager.dict()
    benchmark.pedantic(lambda: unifex_ex.submit(dict_ops, d, HELPER_OPS).result(), rounds=3)
