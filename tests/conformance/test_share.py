"""``Executor.share(obj)``: a handle that tasks receive as an ordinary argument
and read with ``handle.value``; it outlives no executor."""

from __future__ import annotations

from typing import Any

import pytest

import unifex


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
