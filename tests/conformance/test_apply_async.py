"""SPEC 2: ``apply_async`` with ``callback`` and ``error_callback``."""

from __future__ import annotations

import os
from typing import Any

import pytest

from unifex.testing import tasks


def test_callback_gets_the_result(ex: Any) -> None:
    got: list[Any] = []
    fut = ex.apply_async(tasks.add, (2, 3), {"c": 10}, callback=got.append, error_callback=got.append)
    assert fut.result(timeout=30) == 15
    ex.close(wait=True)
    assert got == [15]


def test_error_callback_gets_the_exception(ex: Any) -> None:
    got: list[Any] = []
    fut = ex.apply_async(tasks.fail, ("bad",), callback=got.append, error_callback=got.append)
    with pytest.raises(tasks.TaskError):
        fut.result(timeout=30)
    ex.close(wait=True)
    assert len(got) == 1
    assert isinstance(got[0], tasks.TaskError)
    assert "bad" in str(got[0])


def test_callbacks_run_in_the_submitting_process(ex: Any) -> None:
    pids: list[int] = []
    for i in range(5):
        ex.apply_async(tasks.square, (i,), callback=lambda _r: pids.append(os.getpid()))
        ex.apply_async(tasks.fail, (), error_callback=lambda _e: pids.append(os.getpid()))
    ex.close(wait=True)
    assert pids == [os.getpid()] * 10


def test_args_may_be_any_iterable_and_kwds_optional(ex: Any) -> None:
    assert ex.apply_async(tasks.add, [1, 2]).result(timeout=30) == 3
    assert ex.apply_async(tasks.add, iter((4, 5))).result(timeout=30) == 9
    assert ex.apply_async(tasks.echo).result(timeout=30) == ((), {})


@pytest.mark.parametrize("timeout", [0, -1, "1", True])
def test_bad_timeout_raises_value_error(ex: Any, timeout: Any) -> None:
    with pytest.raises(ValueError, match="timeout"):
        ex.apply_async(tasks.square, (1,), timeout=timeout)
