"""``Executor.share(obj)``: a handle that tasks receive as an ordinary argument
and read with ``handle.value``; it outlives no executor."""

from __future__ import annotations

from typing import Any

import pytest

import unifex
from unifex.testing import tasks

# a start method can change this clause: run it under each (see unifex.testing)
pytestmark = pytest.mark.worker_start


def read_shared(handle: Any, key: str) -> Any:
    return handle.value[key]


def test_a_task_reads_the_shared_object(ex: Any) -> None:
    obj = {"numbers": list(range(1000)), "name": "shared"}
    handle = ex.share(obj)
    futures = [ex.submit(read_shared, handle, "numbers") for _ in range(6)]
    assert all(f.result(timeout=60) == obj["numbers"] for f in futures)
    assert list(ex.map(read_shared, [handle] * 4, ["name"] * 4)) == ["shared"] * 4
    assert handle.value == obj  # and in the caller


def test_share_after_close_raises(make_executor: Any) -> None:
    ex = make_executor()
    ex.close()
    with pytest.raises(unifex.ExecutorClosedError):
        ex.share([1, 2, 3])


TABLE = {"weights": list(range(100)), "name": "model", "nested": {"a": (1, 2.5, None)}}


def test_a_handle_value_is_the_object_inside_tasks(ex: Any) -> None:
    handle = ex.share(TABLE)
    assert handle.value == TABLE
    futures = [ex.submit(tasks.shared_value, handle) for _ in range(6)]
    assert [f.result(timeout=60) for f in futures] == [TABLE] * 6
    assert list(ex.map(tasks.shared_value, [handle] * 5)) == [TABLE] * 5
    assert ex.apply_async(tasks.shared_value, (handle,)).get(timeout=60) == TABLE


def test_several_handles_stay_apart(ex: Any) -> None:
    handles = [ex.share(i * 10) for i in range(4)]
    assert [ex.submit(tasks.shared_value, h).result(timeout=60) for h in handles] == [0, 10, 20, 30]
    assert [h.value for h in handles] == [0, 10, 20, 30]


def test_share_after_terminate_raises_executor_closed(ex: Any) -> None:
    ex.terminate()
    with pytest.raises(unifex.ExecutorClosedError, match=r"closed|terminated"):
        ex.share(TABLE)


def test_a_handle_is_released_when_its_executor_closes(ex: Any) -> None:
    handle = ex.share(TABLE)
    assert ex.submit(tasks.shared_value, handle).result(timeout=60) == TABLE
    ex.close()
    # what the handle held in the workers is gone with them (the leak check sees
    # any shared-memory segment left); the caller's value stays readable
    assert handle.value == TABLE
    assert "Shared" in repr(handle)
