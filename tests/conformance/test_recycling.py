"""Lifecycle 2: ``max_tasks_per_worker`` replaces a worker between tasks once
it has run that many, on every kind with workers; replacing workers under a
full queue never deadlocks (CPython's ``max_tasks_per_child`` trap)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from unifex.testing import lifecycle_tasks as lt
from unifex.testing import tasks

from ._lifecycle import LIFECYCLE_KINDS

pytestmark = [pytest.mark.kinds(*LIFECYCLE_KINDS), pytest.mark.worker_start]


@pytest.mark.timeout(60)
def test_no_worker_runs_more_than_max_tasks(make_executor: Any) -> None:
    ex = make_executor(size=2, max_tasks_per_worker=3)
    tokens = Counter(ex.map(lt.worker_token, range(24), chunksize=1))  # a batch counts as one task
    assert sum(tokens.values()) == 24
    assert max(tokens.values()) <= 3
    assert len(tokens) >= 8  # 24 tasks, 3 per worker


@pytest.mark.timeout(60)
def test_a_replaced_worker_runs_the_initializer_again(make_executor: Any) -> None:
    ex = make_executor(size=1, max_tasks_per_worker=2, initializer=lt.init_state, initargs=("fresh",))
    results = [ex.submit(lt.count_in_state).result(timeout=30) for _ in range(6)]
    by_worker: dict[str, list[int]] = {}
    for token, n in results:
        by_worker.setdefault(token, []).append(n)
    # each worker's state starts empty and serves at most 2 tasks (a dask cluster may have several workers)
    assert all(ns in ([1], [1, 2]) for ns in by_worker.values())
    assert len(by_worker) >= 3


@pytest.mark.timeout(120)
def test_one_task_per_worker_under_a_full_queue_does_not_deadlock(make_executor: Any) -> None:
    ex = make_executor(size=2, max_tasks_per_worker=1)
    futures = [ex.submit(tasks.square, i) for i in range(40)]
    assert [f.result(timeout=60) for f in futures] == [i * i for i in range(40)]
    assert list(ex.map(tasks.square, range(20))) == [i * i for i in range(20)]
    ex.close(wait=True)
