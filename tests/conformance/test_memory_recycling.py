"""Lifecycle 2: ``max_memory_per_worker`` (bytes, or a size such as "500MB")
on ``process`` and ``dask``: a worker whose memory grew past it is replaced
between tasks, and the ``unifex`` logger says so."""

from __future__ import annotations

import logging
from typing import Any

import pytest

import unifex
from unifex.testing import KindConfig, tasks
from unifex.testing import lifecycle_tasks as lt

pytestmark = [pytest.mark.kinds("process", "dask"), pytest.mark.worker_start]


@pytest.mark.timeout(120)
def test_a_worker_past_its_memory_limit_is_replaced(make_executor: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="unifex")
    ex = make_executor(size=1, max_memory_per_worker="1KB")  # every worker is past it after its first task
    tokens = [ex.submit(lt.worker_token).result(timeout=60) for _ in range(3)]
    assert len(set(tokens)) == 3
    assert any("max_memory_per_worker" in r.getMessage() for r in caplog.records if r.name == "unifex")
    futures = [ex.submit(tasks.square, i) for i in range(10)]  # replaced under a full queue: no deadlock
    assert [f.result(timeout=60) for f in futures] == [i * i for i in range(10)]


@pytest.mark.timeout(60)
def test_a_generous_limit_keeps_the_worker(make_executor: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="unifex")
    ex = make_executor(size=1, max_memory_per_worker=64 * 1024**3)
    counts = [ex.submit(lt.count_in_state).result(timeout=30) for _ in range(6)]
    assert max(n for _, n in counts) >= 2  # some worker kept its state across tasks
    assert not any("max_memory_per_worker" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("bad", [0, -5, "lots", "12XB", True])
def test_bad_memory_limits_raise_value_error(kind_config: KindConfig, bad: object) -> None:
    with pytest.raises(ValueError, match="max_memory_per_worker"):
        unifex.executor(kind_config.kind, size=1, max_memory_per_worker=bad, **kind_config.options)
