"""The ``dask`` kind beside plain ``distributed`` on the same cluster, in the
same pytest-benchmark groups.

Targets (side by side in one run): ``map`` of 100,000 tiny tasks at least 10x
the throughput (tasks per second) of plain ``client.map``; submit+result of
one tiny task at a time within about 1.2x of ``client.submit(...).result()``.

Plain ``client.map`` makes one scheduler task per input (about 3 ms each on a
2-core machine), so 100,000 of them would take minutes per round: the raw case
maps ``RAW_MAP_TASKS`` inputs and both cases record ``tasks_per_second`` in
``extra_info``; compare those. ``UNIFEX_BENCH_DASK_FULL=1`` runs the raw case on
all 100,000 too.

    python3 -m pytest benchmarks/test_dask.py --benchmark-only
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Iterator
from typing import Any

import pytest

import unifex
from unifex.bench.workloads import noop, square

distributed = pytest.importorskip("distributed", reason="the dask kind needs distributed: pip install 'unifex[dask]'")

SIZE = 2
MAP_TASKS = 100_000
RAW_MAP_TASKS = MAP_TASKS if os.environ.get("UNIFEX_BENCH_DASK_FULL") == "1" else 2_000
ONE_AT_A_TIME = 20


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    """One embedded-style cluster (``SIZE`` worker processes, one thread each)
    for both subjects, so they run on the same workers."""
    cluster = distributed.LocalCluster(n_workers=SIZE, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=logging.ERROR)
    c = distributed.Client(cluster, set_as_default=False)
    c.wait_for_workers(SIZE, timeout=60)
    yield c
    c.close()
    cluster.close()


@pytest.fixture(scope="module")
def ex(client: Any) -> Iterator[Any]:
    with unifex.executor("dask", size=SIZE, client=client) as executor:
        executor.submit(noop).result(timeout=60)
        yield executor


@pytest.mark.benchmark(group="dask: submit+result, one tiny task at a time")
def test_unifex_submit_result(benchmark: Any, ex: Any) -> None:
    def run() -> None:
        for _ in range(ONE_AT_A_TIME):
            ex.submit(noop).result()

    benchmark.extra_info["tasks_per_round"] = ONE_AT_A_TIME
    benchmark.pedantic(run, rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group="dask: submit+result, one tiny task at a time")
def test_client_submit_result(benchmark: Any, client: Any) -> None:
    def run() -> None:
        for _ in range(ONE_AT_A_TIME):
            client.submit(noop, pure=False).result()

    benchmark.extra_info["tasks_per_round"] = ONE_AT_A_TIME
    benchmark.pedantic(run, rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group="dask: map of tiny tasks (compare tasks_per_second)")
def test_unifex_map(benchmark: Any, ex: Any) -> None:
    def run() -> None:
        deque(ex.map(square, range(MAP_TASKS)), maxlen=0)

    benchmark.extra_info["tasks_per_round"] = MAP_TASKS
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    benchmark.extra_info["tasks_per_second"] = MAP_TASKS / benchmark.stats.stats.median


@pytest.mark.benchmark(group="dask: map of tiny tasks (compare tasks_per_second)")
def test_unifex_map_fixed_chunks(benchmark: Any, ex: Any) -> None:
    """The same map with ``chunksize`` given (``ceil(n / (4 * size))``, the
    largest batch ``chunksize=None`` grows to): the batching machinery alone,
    without the adaptive ramp from one-item batches."""
    chunksize = -(-MAP_TASKS // (4 * SIZE))

    def run() -> None:
        deque(ex.map(square, range(MAP_TASKS), chunksize=chunksize), maxlen=0)

    benchmark.extra_info["tasks_per_round"] = MAP_TASKS
    benchmark.pedantic(run, rounds=5, warmup_rounds=1)
    benchmark.extra_info["tasks_per_second"] = MAP_TASKS / benchmark.stats.stats.median


@pytest.mark.benchmark(group="dask: map of tiny tasks (compare tasks_per_second)")
def test_client_map(benchmark: Any, client: Any) -> None:
    def run() -> None:
        futures = client.map(square, range(RAW_MAP_TASKS), pure=False)
        client.gather(futures)
        del futures

    benchmark.extra_info["tasks_per_round"] = RAW_MAP_TASKS
    benchmark.pedantic(run, rounds=3, warmup_rounds=0)
    benchmark.extra_info["tasks_per_second"] = RAW_MAP_TASKS / benchmark.stats.stats.median


# -- a large result (issue 11.3): kept on the cluster until result() -------------------
#
# On unifex's embedded cluster (the default), where the value is fetched straight
# from its worker with its buffers out of band; plain ``client.submit`` and the
# eager path (``zero_copy_threshold=None``: every result comes back with its
# task, through the scheduler) run on the same cluster through its client.

LARGE_RESULT_ITEMS = 8 << 20  # float64: 64 MB


@pytest.fixture(scope="module")
def embedded() -> Iterator[Any]:
    with unifex.executor("dask", size=SIZE) as executor:
        executor.submit(noop).result(timeout=60)
        yield executor


@pytest.fixture(scope="module")
def embedded_eager(embedded: Any) -> Iterator[Any]:
    with unifex.executor("dask", size=SIZE, client=embedded._client, zero_copy_threshold=None) as executor:
        yield executor


@pytest.mark.benchmark(group="dask: submit+result of a 64 MB numpy result")
def test_unifex_large_result(benchmark: Any, embedded: Any) -> None:
    np = pytest.importorskip("numpy")
    benchmark.pedantic(lambda: embedded.submit(np.ones, LARGE_RESULT_ITEMS).result(), rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group="dask: submit+result of a 64 MB numpy result")
def test_unifex_large_result_eager(benchmark: Any, embedded_eager: Any) -> None:
    np = pytest.importorskip("numpy")
    benchmark.pedantic(lambda: embedded_eager.submit(np.ones, LARGE_RESULT_ITEMS).result(), rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group="dask: submit+result of a 64 MB numpy result")
def test_client_large_result(benchmark: Any, embedded: Any) -> None:
    np = pytest.importorskip("numpy")
    client = embedded._client
    benchmark.pedantic(lambda: client.submit(np.ones, LARGE_RESULT_ITEMS, pure=False).result(), rounds=10, warmup_rounds=1)
