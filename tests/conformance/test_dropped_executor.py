"""Reliability 14: an executor dropped without ``close()`` does not keep its
# a start method can change this clause: run it under each (see unifex.testing)
pytestmark = pytest.mark.worker_start


threads: once it is collected they end (as ``ThreadPoolExecutor``'s do)."""

from __future__ import annotations

import gc
import threading
from typing import Any

import pytest

import unifex
from unifex.testing import tasks, wait_until


@pytest.mark.kinds("thread", "pool")
def test_threads_end_when_the_executor_is_collected(kind_config: Any) -> None:
    before = set(threading.enumerate())
    ex = unifex.executor(kind_config.kind, size=3, **kind_config.options)
    assert [f.result(timeout=30) for f in [ex.submit(tasks.square, i) for i in range(6)]] == [i * i for i in range(6)]
    assert set(threading.enumerate()) - before
    del ex
    gc.collect()
    assert wait_until(lambda: not (set(threading.enumerate()) - before), timeout=30)
