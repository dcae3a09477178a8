"""Serialization never hangs: what cannot be pickled fails with
SerializationError saying which part, results and exceptions that cannot cross
fail only their future, exceptions keep their type and carry the worker's
traceback; initializer and the cloudpickle fallback under every start method."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from _process_util import (
    START_METHODS,
    Custom,
    init_fail,
    init_record,
    initialized,
    raise_custom,
    raise_parent_hostile,
    raise_two_arg,
    raise_unpicklable,
    result_at,
    return_exits_when_unpickled,
    return_unpicklable,
)

import unifex
from unifex._backends.process import RemoteTraceback
from unifex.testing import tasks


@pytest.fixture(params=START_METHODS)
def start_method(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ex(start_method: str) -> Iterator[Any]:
    executor = unifex.executor("process", size=2, start_method=start_method)
    yield executor
    executor.terminate()


def test_unpicklable_argument_fails_at_submit_naming_it(ex: Any) -> None:
    with pytest.raises(unifex.SerializationError, match=r"argument 1 <unlocked _thread.lock object"):
        ex.submit(tasks.echo, 1, threading.Lock())
    with pytest.raises(unifex.SerializationError, match=r"keyword argument 'key'"):
        ex.submit(tasks.echo, 1, key=threading.Lock())
    assert ex.submit(tasks.square, 3).result(timeout=30) == 9


@pytest.mark.timeout(60)
@pytest.mark.parametrize("chunksize", [None, 1, 2, 3, 20])
def test_unpicklable_map_input_fails_at_its_position(ex: Any, chunksize: int | None) -> None:
    """Issue 14.9: the error names the item's position in the whole map and is
    raised where that item's result would be, after the items before it."""
    items: list[Any] = [0, 1, 2, 3, 4, threading.Lock(), 6, 7, 8, 9]
    results = ex.map(str, items, chunksize=chunksize)  # does not raise here
    got = []
    with pytest.raises(unifex.SerializationError, match=r"map input item 5\b.*_thread.lock"):
        for value in results:
            got.append(value)
    assert got == ["0", "1", "2", "3", "4"]
    assert list(ex.map(str, range(3), chunksize=chunksize)) == ["0", "1", "2"]


@pytest.mark.timeout(60)
def test_unpicklable_first_input_of_a_later_batch(ex: Any) -> None:
    items: list[Any] = [*range(8), threading.Lock(), 9]
    got = []
    with pytest.raises(unifex.SerializationError, match=r"map input item 8\b"):
        for value in ex.map(tasks.identity, items, chunksize=4):
            got.append(value)
    assert got == list(range(8))


def test_unpicklable_map_function_fails_at_the_call(ex: Any) -> None:
    lock = threading.Lock()
    with pytest.raises(unifex.SerializationError, match="the function"):
        ex.map(lambda x: (lock, x), range(10), chunksize=5)


def test_unpicklable_function_fails_at_submit(ex: Any) -> None:
    lock = threading.Lock()

    def uses_lock() -> bool:
        return lock.locked()

    with pytest.raises(unifex.SerializationError, match="the function"):
        ex.submit(uses_lock)


@pytest.mark.timeout(60)
def test_unpicklable_result_or_exception_keeps_the_worker(start_method: str) -> None:
    with unifex.executor("process", size=1, start_method=start_method) as ex:
        pid = ex.submit(tasks.getpid).result(timeout=30)
        with pytest.raises(unifex.SerializationError, match="result, a Unpicklable, could not be pickled"):
            ex.submit(return_unpicklable).result(timeout=30)
        with pytest.raises(unifex.SerializationError, match="UnpicklableError"):
            ex.submit(raise_unpicklable).result(timeout=30)
        assert ex.submit(tasks.getpid).result(timeout=30) == pid


@pytest.mark.timeout(60)
def test_unpicklable_exception_fails_only_that_future(ex: Any) -> None:
    fut = ex.submit(raise_unpicklable)
    with pytest.raises(unifex.SerializationError, match="UnpicklableError: cannot travel") as info:
        fut.result(timeout=30)
    assert "raise_unpicklable" in str(info.value.__cause__)
    assert ex.submit(tasks.square, 7).result(timeout=30) == 49


@pytest.mark.timeout(60)
def test_exception_that_cannot_be_unpickled_does_not_hang(ex: Any) -> None:
    with pytest.raises(unifex.SerializationError, match="TwoArgError"):
        ex.submit(raise_two_arg).result(timeout=30)
    # unpickles in the worker, fails in the parent: the dispatcher survives it
    with pytest.raises(unifex.SerializationError, match="could not be unpickled in the parent process"):
        ex.submit(raise_parent_hostile, os.getpid()).result(timeout=30)
    assert [f.result(timeout=30) for f in [ex.submit(tasks.square, i) for i in range(4)]] == [0, 1, 4, 9]


@pytest.mark.timeout(60)
def test_result_whose_unpickling_raises_systemexit_fails_only_its_future(ex: Any) -> None:
    """Issue 14.1: SystemExit while unpickling a reply must not kill the dispatcher."""
    with pytest.raises(unifex.SerializationError, match=r"could not be unpickled in the parent process.*SystemExit"):
        ex.submit(return_exits_when_unpickled).result(timeout=30)
    with pytest.raises(unifex.SerializationError, match="could not be unpickled in the parent process"):
        list(ex.map(return_exits_when_unpickled, range(4), chunksize=2))
    later = [ex.submit(tasks.square, i) for i in range(4)]
    assert [f.result(timeout=30) for f in later] == [0, 1, 4, 9]
    ex.close(wait=True)


@pytest.mark.timeout(60)
def test_exception_keeps_its_type_and_remote_traceback(ex: Any) -> None:
    with pytest.raises(Custom, match="mine") as info:
        ex.submit(raise_custom, "mine").result(timeout=30)
    cause = info.value.__cause__
    assert isinstance(cause, RemoteTraceback)
    assert "raise_custom" in cause.text and "Custom: mine" in cause.text


@pytest.mark.timeout(60)
def test_unpicklable_result_in_a_map_chunk_raises_at_its_position(ex: Any) -> None:
    got = []
    with pytest.raises(unifex.SerializationError, match="the result of map input item 4"):
        for value in ex.map(result_at, range(10), [4] * 10, chunksize=10):
            got.append(value)
    assert got == [0, 1, 2, 3]


@pytest.mark.timeout(60)
def test_initializer_and_initargs(start_method: str) -> None:
    with unifex.executor("process", size=2, start_method=start_method, initializer=init_record, initargs=("ready",)) as ex:
        assert ex.submit(initialized).result(timeout=30) == ["ready"]


@pytest.mark.timeout(60)
def test_a_failing_initializer_fails_the_tasks_with_its_error(start_method: str) -> None:
    with unifex.executor("process", size=1, start_method=start_method, initializer=init_fail) as ex:
        for _ in range(2):
            with pytest.raises(LookupError, match="on purpose"):
                ex.submit(tasks.square, 2).result(timeout=30)


def test_lambda_initializer(start_method: str) -> None:
    with unifex.executor("process", size=1, start_method=start_method, initializer=lambda: None) as ex:
        assert ex.submit(tasks.square, 2).result(timeout=30) == 4


def test_bad_options() -> None:
    with pytest.raises(ValueError, match="start_method"):
        unifex.executor("process", start_method="thread")
    with pytest.raises(ValueError, match="max_tasks_per_worker"):
        unifex.executor("process", max_tasks_per_worker=0)
    with pytest.raises(TypeError, match="initializer"):
        unifex.executor("process", initializer=3)
    with pytest.raises(TypeError, match="unknown option"):
        unifex.executor("process", chunksize=3)
    with pytest.raises(unifex.SerializationError, match="initargs"):
        unifex.executor("process", initializer=init_record, initargs=(threading.Lock(),))


def test_default_start_method_is_forkserver() -> None:
    ex = unifex.executor("process", size=1)
    try:
        assert ex.start_method == "forkserver"  # type: ignore[attr-defined]
        assert "forkserver" in repr(ex)
    finally:
        ex.close()


INTERACTIVE = """
import unifex
def from_main(x):
    return x * 2
offset = 5
with unifex.executor("process", size=2, start_method="{method}") as ex:
    print(ex.submit(from_main, 4).result(timeout=30), list(ex.map(lambda x: x + offset, range(3))))
"""


@pytest.mark.timeout(60)
def test_functions_from_an_interactive_main(start_method: str) -> None:
    # python -c: __main__ cannot be re-imported by a worker, so it travels by value
    out = subprocess.run(
        [sys.executable, "-c", INTERACTIVE.format(method=start_method)], capture_output=True, text=True, timeout=60, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "8 [5, 6, 7]"
