"""Lifecycle 1: ``unifex.worker_state()`` inside a task returns a dict private
to the worker running it (one per thread, process, greenlet worker or dask
worker), kept from task to task."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import pytest

import unifex
from unifex.testing import KindConfig
from unifex.testing import lifecycle_tasks as lt

from ._lifecycle import LIFECYCLE_KINDS

pytestmark = [pytest.mark.kinds(*LIFECYCLE_KINDS), pytest.mark.worker_start]


@pytest.mark.timeout(60)
def test_each_worker_keeps_its_own_state_across_tasks(make_executor: Any) -> None:
    ex = make_executor(size=2)
    seen = list(ex.map(lt.count_in_state, range(40)))
    counts: dict[str, list[int]] = defaultdict(list)
    for token, n in seen:
        counts[token].append(n)
    assert 1 <= len(counts) <= 2  # one state per worker, at most size workers
    for ns in counts.values():
        assert sorted(ns) == list(range(1, len(ns) + 1))  # private: no other worker counted in it
    assert sum(len(ns) for ns in counts.values()) == 40


@pytest.mark.timeout(60)
def test_the_initializer_fills_the_state_every_task_reads(make_executor: Any) -> None:
    ex = make_executor(size=3, initializer=lt.init_state, initargs=("model",))
    results = list(ex.map(lt.read_state, range(30)))
    assert {tag for tag, _ in results} == {"model"}
    assert {inits for _, inits in results} == {1}  # the initializer ran once per worker


def test_worker_state_outside_a_task_raises() -> None:
    with pytest.raises(RuntimeError, match="worker_state"):
        unifex.worker_state()


@pytest.mark.timeout(60)
def test_state_of_one_executor_is_not_seen_by_another(make_executor: Any, kind_config: KindConfig) -> None:
    a = make_executor(size=1, initializer=lt.init_state, initargs=("a",))
    b = make_executor(size=1, initializer=lt.init_state, initargs=("b",))
    assert a.submit(lt.read_state).result(timeout=30) == ("a", 1)
    assert b.submit(lt.read_state).result(timeout=30) == ("b", 1)
    assert a.submit(lt.read_state).result(timeout=30) == ("a", 1)
