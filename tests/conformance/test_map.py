"""SPEC 2: ``map`` results, order, several iterables, chunks, errors, timeout."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

import unifex
from unifex.testing import tasks


def test_results_in_input_order(ex: Any) -> None:
    assert list(ex.map(tasks.square, range(50))) == [i * i for i in range(50)]


def test_several_iterables_stop_at_the_shortest(ex: Any) -> None:
    assert list(ex.map(tasks.add, range(10), range(100, 105))) == [100, 102, 104, 106, 108]


def test_empty_input(ex: Any) -> None:
    assert list(ex.map(tasks.square, [])) == []


def test_unordered_yields_every_result(ex: Any) -> None:
    assert sorted(ex.map(tasks.square, range(40), ordered=False)) == sorted(i * i for i in range(40))


@pytest.mark.parametrize("chunksize", [1, 3, 7, 100])
def test_chunksize_keeps_results_and_order(ex: Any, chunksize: int) -> None:
    assert list(ex.map(tasks.square, range(23), chunksize=chunksize)) == [i * i for i in range(23)]
    assert sorted(ex.map(tasks.square, range(23), chunksize=chunksize, ordered=False)) == [i * i for i in range(23)]


@pytest.mark.parametrize("buffersize", [1, 2, 5])
def test_small_buffersize_keeps_results_and_order(ex: Any, buffersize: int) -> None:
    assert list(ex.map(tasks.square, range(20), buffersize=buffersize)) == [i * i for i in range(20)]


@pytest.mark.parametrize("chunksize", [1, 4])
def test_first_error_is_raised_at_its_position(ex: Any, chunksize: int) -> None:
    it = ex.map(tasks.raise_at, range(10), itertools.repeat(6), chunksize=chunksize)
    got = []
    with pytest.raises(tasks.TaskError, match="bad input 6"):
        for value in it:
            got.append(value)
    assert got == [i * i for i in range(6)]


def test_unordered_error_is_raised(ex: Any) -> None:
    with pytest.raises(tasks.TaskError):
        list(ex.map(tasks.raise_at, range(10), itertools.repeat(3), ordered=False))


def test_closed_executor_raises_at_call_not_iteration(ex: Any) -> None:
    ex.close()
    with pytest.raises(unifex.ExecutorClosedError):
        ex.map(tasks.square, range(3))


@pytest.mark.parametrize("bad", [0, -2, 1.5])
def test_bad_chunksize_or_buffersize(ex: Any, bad: Any) -> None:
    with pytest.raises(ValueError, match="chunksize"):
        ex.map(tasks.square, range(3), chunksize=bad)
    with pytest.raises(ValueError, match="buffersize"):
        ex.map(tasks.square, range(3), buffersize=bad)


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_timeout_is_a_deadline_from_the_call(make_executor: Any) -> None:
    ex = make_executor(size=2)
    release = ex.Event()
    try:
        it = ex.map(tasks.wait_event_then, itertools.repeat(release, 4), range(4), timeout=0.5)
        with pytest.raises(TimeoutError):
            list(it)
    finally:
        release.set()


def test_results_are_plain_values_not_chunks(ex: Any) -> None:
    out = list(ex.map(tasks.identity, [(1, 2), [3], "ab"], chunksize=2))
    assert out == [(1, 2), [3], "ab"]


def test_lambda_and_builtin_functions(ex: Any) -> None:
    assert list(ex.map(abs, [-1, -2, 3])) == [1, 2, 3]
    assert list(ex.map(lambda x: x + 1, range(5))) == [1, 2, 3, 4, 5]
