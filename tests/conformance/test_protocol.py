"""SPEC 2: every kind satisfies the runtime-checkable ``Executor`` protocol."""

from __future__ import annotations

import os
from typing import Any

import unifex
from unifex.testing import KindConfig

DEFAULT_SIZES = {
    "thread": min(32, (os.cpu_count() or 1) + 4),
    "pool": min(32, (os.cpu_count() or 1) + 4),
    "process": os.cpu_count() or 1,
    "gevent": 100,
    "greenlet": 100,
    "serial": 1,
    "dask": os.cpu_count() or 1,
}


def test_is_an_executor_with_kind_and_size(make_executor: Any, kind_config: KindConfig) -> None:
    ex = make_executor(size=3)
    assert isinstance(ex, unifex.Executor)
    assert ex.kind == kind_config.kind
    assert ex.size == 3


def test_default_size(make_executor: Any, kind_config: KindConfig) -> None:
    ex = make_executor(size=None)
    assert isinstance(ex.size, int) and ex.size >= 1
    joined = "address" in kind_config.options or "client" in kind_config.options
    if kind_config.kind in DEFAULT_SIZES and not joined:
        assert ex.size == DEFAULT_SIZES[kind_config.kind]


def test_submit_returns_a_unifex_future(ex: Any) -> None:
    fut = ex.submit(pow, 2, 3)
    assert isinstance(fut, unifex.Future)
    assert fut.result(timeout=30) == 8
