"""Data on the ``dask`` kind: ``share()`` scatters an object to every worker
once, and arguments above ``zero_copy_threshold`` travel as scattered data
(dask dependencies), not inside the task graph."""

from __future__ import annotations

import os
import uuid
from typing import Any

import pytest

distributed = pytest.importorskip("distributed", reason="the dask kind needs distributed: pip install 'unifex[dask]'")

import unifex  # noqa: E402
from unifex.testing import dask_cluster  # noqa: E402

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="session")
def shared_address() -> str:
    return dask_cluster.address()


class Counted:
    """A value that counts, per process, how often it is unpickled."""

    def __init__(self, tag: str, size: int) -> None:
        self.tag = tag
        self.data = b"x" * size

    def __reduce__(self) -> tuple[Any, ...]:
        return (rebuild_counted, (self.tag, len(self.data)))


def rebuild_counted(tag: str, size: int) -> Counted:
    name = f"UNIFEX_TEST_UNPICKLED_{tag}"
    os.environ[name] = str(int(os.environ.get(name, "0")) + 1)  # process-wide counter
    return Counted(tag, size)


def read_counted(handle: Any) -> tuple[int, int, int]:
    value = handle.value
    return os.getpid(), len(value.data), int(os.environ.get(f"UNIFEX_TEST_UNPICKLED_{value.tag}", "0"))


def dependencies_and_sizes(*args: Any, **kwargs: Any) -> tuple[int, list[int]]:
    worker = distributed.get_worker()
    task = worker.state.tasks[worker.get_current_task()]
    return len(task.dependencies), [len(a) for a in args] + [len(v) for v in kwargs.values()]


def dask_executor(**options: Any) -> Any:
    return unifex.executor("dask", **options)


def test_a_shared_handle_is_resolved_once_per_worker(shared_address: str) -> None:
    tag = uuid.uuid4().hex
    with dask_executor(address=shared_address) as ex:
        handle = ex.share(Counted(tag, 100_000))
        results = [f.result(timeout=60) for f in [ex.submit(read_counted, handle) for _ in range(24)]]
        results += list(ex.map(read_counted, [handle] * 24, chunksize=1))
    assert {size for _, size, _ in results} == {100_000}
    assert {count for _, _, count in results} == {1}  # every worker unpickled it once, whatever ran there
    assert handle.value.tag == tag


def test_a_handle_travels_as_its_key(shared_address: str) -> None:
    with dask_executor(address=shared_address, size=1) as ex:
        handle = ex.share(b"y" * 5_000_000)
        assert len(distributed.protocol.pickle.dumps(handle)) < 1_000
        assert ex.submit(len, handle.value).result(timeout=60) == 5_000_000


def test_arguments_above_the_threshold_are_scattered_not_embedded(shared_address: str) -> None:
    with unifex.executor("dask", address=shared_address, size=1, zero_copy_threshold=100_000) as ex:
        big, small = b"b" * 1_000_000, b"s" * 10
        assert ex.submit(dependencies_and_sizes, big, small).result(timeout=60) == (1, [1_000_000, 10])
        assert ex.submit(dependencies_and_sizes, small, data=big).result(timeout=60) == (1, [10, 1_000_000])
        assert ex.submit(dependencies_and_sizes, small).result(timeout=60) == (0, [10])
    with unifex.executor("dask", address=shared_address, size=1) as ex:  # default: 1 MiB
        assert ex.submit(dependencies_and_sizes, b"m" * 2_000_000).result(timeout=60) == (1, [2_000_000])
        assert ex.submit(dependencies_and_sizes, b"m" * 500_000).result(timeout=60) == (0, [500_000])


@pytest.mark.parametrize("bad", [-1, 1.5, True, "1MB"])
def test_a_bad_threshold_is_refused(bad: object) -> None:
    with pytest.raises(ValueError, match="zero_copy_threshold"):
        unifex.executor("dask", size=1, zero_copy_threshold=bad)
