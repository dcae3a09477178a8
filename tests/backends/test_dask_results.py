"""Large results of the ``dask`` kind stay on the cluster until asked for
(issue 11.3): a value whose pickle is at least ``zero_copy_threshold`` bytes is
kept in the worker's memory when its task ends; the first ``result()`` (or
``await``) fetches it and releases the cluster's copy, and so does dropping
the future or closing the executor.

That the bytes did not travel before ``result()`` is read from the workers'
own transfer counters (``transfer_outgoing_bytes_total``, which dask updates
whenever a worker sends data to anyone) and the scheduler's task table.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
from typing import Any

import pytest

distributed = pytest.importorskip("distributed", reason="the dask kind needs distributed: pip install 'unifex[dask]'")

import unifex  # noqa: E402
from unifex.testing import dask_cluster, wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(180)

SIZE = 4 << 20
THRESHOLD = 1 << 20


@pytest.fixture(scope="session")
def shared_address() -> str:
    return dask_cluster.address()


@pytest.fixture
def ex(shared_address: str) -> Any:
    with unifex.executor("dask", address=shared_address, size=2, zero_copy_threshold=THRESHOLD) as ex:
        yield ex


def make_bytes(n: int, fill: int = 7) -> bytes:
    return bytes([fill]) * n


def fail_big(n: int) -> None:
    raise ValueError("x" * n)


def sent_by_workers(client: Any) -> int:
    """Bytes every worker of the cluster has sent to anyone so far."""
    return sum(client.run(lambda dask_worker: dask_worker.transfer_outgoing_bytes_total).values())


def keys_on_scheduler(client: Any, name: str) -> list[str]:
    return [k for k in client.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks]) if f"unifex-{name}-" in k]


def released(client: Any, name: str) -> bool:
    return wait_until(lambda: not keys_on_scheduler(client, name), timeout=60, interval=0.1)


def test_a_large_result_stays_on_the_cluster_until_result(ex: Any) -> None:
    client = ex._client
    before = sent_by_workers(client)
    fut = ex.submit(make_bytes, SIZE)
    done, _ = concurrent.futures.wait([fut], timeout=60)
    assert done == {fut} and fut.done() and not fut.cancelled()
    assert fut.exception() is None  # a held value is never an error: no fetch needed to say so
    assert len(keys_on_scheduler(client, "make_bytes")) == 1  # still in a worker's memory
    assert sent_by_workers(client) - before < SIZE  # and not sent to us
    assert fut.result(timeout=60) == make_bytes(SIZE)
    assert sent_by_workers(client) - before >= SIZE  # result() fetched it
    assert released(client, "make_bytes")  # and let the cluster's copy go
    assert fut.result() == make_bytes(SIZE)  # fetched once, kept here


def test_a_small_result_comes_back_with_the_task(ex: Any) -> None:
    client = ex._client
    fut = ex.submit(make_bytes, 1000)
    unifex.wait([fut], timeout=60)
    assert released(client, "make_bytes")  # gathered at once: nothing left to fetch
    assert fut.result() == make_bytes(1000)


def test_a_dropped_future_releases_its_value(ex: Any) -> None:
    client = ex._client
    before = sent_by_workers(client)
    fut = ex.submit(make_bytes, SIZE)
    unifex.wait([fut], timeout=60)
    assert keys_on_scheduler(client, "make_bytes")
    del fut
    gc.collect()
    assert released(client, "make_bytes")
    assert sent_by_workers(client) - before < SIZE  # never fetched


def test_closing_fetches_the_values_left_on_the_cluster(shared_address: str) -> None:
    ex: Any
    with unifex.executor("dask", address=shared_address, size=2, zero_copy_threshold=THRESHOLD) as ex:
        futs = [ex.submit(make_bytes, SIZE, i) for i in range(3)]
        unifex.wait(futs, timeout=60)
        client = ex._client
        assert len(keys_on_scheduler(client, "make_bytes")) == 3
    assert [f.result() for f in futs] == [make_bytes(SIZE, i) for i in range(3)]
    with distributed.Client(shared_address, set_as_default=False) as other:
        assert released(other, "make_bytes")


def test_await_fetches_a_held_value(ex: Any) -> None:
    fut = ex.submit(make_bytes, SIZE)
    unifex.wait([fut], timeout=60)

    async def main() -> bytes:
        return await fut  # type: ignore[no-any-return]

    assert asyncio.run(asyncio.wait_for(main(), 60)) == make_bytes(SIZE)
    assert released(ex._client, "make_bytes")


def test_await_before_the_end_and_run_in_executor_get_the_value(ex: Any) -> None:
    async def main() -> tuple[bytes, bytes]:
        a = await ex.submit(make_bytes, SIZE, 1)
        b = await asyncio.get_running_loop().run_in_executor(ex, make_bytes, SIZE, 2)
        return a, b

    assert asyncio.run(asyncio.wait_for(main(), 60)) == (make_bytes(SIZE, 1), make_bytes(SIZE, 2))


def test_callbacks_retries_and_map_see_the_value(ex: Any) -> None:
    got: list[Any] = []
    seen = ex.Event()

    def on_done(fut: Any) -> None:
        got.append(fut.result())
        seen.set()

    f = ex.submit(make_bytes, SIZE, 1)
    f.add_done_callback(on_done)
    assert seen.wait(60)
    assert ex.apply_async(make_bytes, (SIZE, 2), callback=got.append).get(timeout=60) == make_bytes(SIZE, 2)
    assert ex.apply_async(make_bytes, (SIZE, 3), retries=1).get(timeout=60) == make_bytes(SIZE, 3)
    assert list(ex.map(make_bytes, [SIZE, SIZE], [4, 5], chunksize=1)) == [make_bytes(SIZE, 4), make_bytes(SIZE, 5)]
    assert got == [make_bytes(SIZE, 1), make_bytes(SIZE, 2)]


def test_a_large_error_comes_back_at_once(ex: Any) -> None:
    fut = ex.submit(fail_big, SIZE)
    assert isinstance(fut.exception(timeout=60), ValueError)
    assert released(ex._client, "fail_big")


def test_without_a_threshold_every_result_comes_back_with_its_task(shared_address: str) -> None:
    ex: Any
    with unifex.executor("dask", address=shared_address, size=2, zero_copy_threshold=None) as ex:
        fut = ex.submit(make_bytes, SIZE)
        unifex.wait([fut], timeout=60)
        assert released(ex._client, "make_bytes")
        assert fut.result() == make_bytes(SIZE)


def test_a_held_numpy_array_comes_back_whole_and_writable() -> None:
    # the embedded cluster: fetched straight from the worker, its buffer out of band
    np = pytest.importorskip("numpy", reason="the test checks a numpy array's buffer")
    ex: Any
    with unifex.executor("dask", size=1, zero_copy_threshold=THRESHOLD) as ex:
        fut = ex.submit(np.arange, SIZE // 8, dtype=np.float64)
        unifex.wait([fut], timeout=60)
        assert keys_on_scheduler(ex._client, "arange")
        a = fut.result(timeout=60)
        assert released(ex._client, "arange")
    assert a.shape == (SIZE // 8,) and a[-1] == SIZE // 8 - 1 and a.sum() == (SIZE // 8) * (SIZE // 8 - 1) / 2
    a[0] = 42.0  # writable: not a view of a read-only frame
    assert a[0] == 42.0
