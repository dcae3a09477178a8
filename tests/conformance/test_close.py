"""SPEC 2: ``close(wait)`` refuses new work, waits for accepted tasks, is
idempotent; work after close raises ``ExecutorClosedError``."""

from __future__ import annotations

from typing import Any

import pytest

import unifex
from unifex.testing import tasks


def test_close_waits_for_every_accepted_task(ex: Any) -> None:
    futures = [ex.submit(tasks.sleep_return, 0.02, i) for i in range(8)]
    ex.close(wait=True)
    assert all(f.done() for f in futures)
    assert [f.result() for f in futures] == list(range(8))


def test_close_is_idempotent(ex: Any) -> None:
    ex.submit(tasks.square, 2).result(timeout=30)
    ex.close()
    ex.close()
    ex.close(wait=False)
    ex.close(wait=True)


@pytest.mark.parametrize("method", ["submit", "apply_async", "map"])
def test_work_after_close_raises_executor_closed(ex: Any, method: str) -> None:
    ex.close()
    with pytest.raises(unifex.ExecutorClosedError) as info:
        if method == "submit":
            ex.submit(tasks.square, 1)
        elif method == "apply_async":
            ex.apply_async(tasks.square, (1,))
        else:
            ex.map(tasks.square, [1])
    assert isinstance(info.value, RuntimeError)
    assert ex.kind in str(info.value)
    assert "closed" in str(info.value)


def test_close_without_wait_still_completes_accepted_tasks(ex: Any) -> None:
    futures = [ex.submit(tasks.sleep_return, 0.05, i) for i in range(4)]
    ex.close(wait=False)
    assert [f.result(timeout=30) for f in futures] == list(range(4))
    ex.close(wait=True)


@pytest.mark.timeout(60)
def test_close_after_errors_and_callbacks(ex: Any) -> None:
    seen: list[Any] = []
    for i in range(6):
        ex.apply_async(tasks.raise_at, (i, 3), callback=seen.append, error_callback=lambda e: seen.append(type(e).__name__))
    ex.close(wait=True)
    assert sorted(map(str, seen)) == sorted(map(str, [0, 1, 4, 16, 25, "TaskError"]))
