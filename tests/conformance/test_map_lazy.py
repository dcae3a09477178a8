"""SPEC 2: ``map`` is lazy with bounded in-flight inputs, and keeps every
worker busy while inputs remain."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from unifex.testing import tasks, wait_until


class Counting:
    """An iterator that counts how many items were taken from it."""

    def __init__(self, source: Iterator[Any]) -> None:
        self.source = source
        self.taken = 0

    def __iter__(self) -> Counting:
        return self

    def __next__(self) -> Any:
        value = next(self.source)
        self.taken += 1
        return value


@pytest.mark.timeout(60)
def test_infinite_generator_is_never_materialised(ex: Any) -> None:
    source = Counting(itertools.count())
    it = ex.map(tasks.square, source)
    first = list(itertools.islice(it, 25))
    assert first == [i * i for i in range(25)]
    # at most the results taken plus one default buffer of in-flight inputs:
    # 4 x size inputs, or batches, each of at most the kind's batch limit for
    # an iterator of unknown length (dask: 256, so the old fixed bound of
    # 2 x size x 64 failed whenever dask's batches had grown before the 25th result)
    assert source.taken <= 25 + 4 * ex.size * ex._default_chunksize(None) + 1
    it.close()


@pytest.mark.timeout(60)
def test_ten_million_items_do_not_get_read(ex: Any) -> None:
    source = Counting(iter(range(10_000_000)))
    it = ex.map(tasks.square, source, buffersize=8)
    assert next(it) == 0
    assert next(it) == 1
    assert source.taken <= 2 + 8
    it.close()


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_buffersize_bounds_inputs_in_flight(make_executor: Any) -> None:
    ex = make_executor(size=4)
    release = ex.Event()
    try:
        source = Counting(zip(itertools.repeat(release), itertools.count(), strict=False))
        it = ex.map(tasks.wait_pair, source, buffersize=3)
        assert source.taken <= 3
        release.set()
        assert list(itertools.islice(it, 10)) == list(range(10))
        assert source.taken <= 10 + 3
        it.close()
    finally:
        release.set()


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_every_worker_has_work_while_inputs_remain(make_executor: Any) -> None:
    size = 3
    ex = make_executor(size=size)
    release = ex.Event()
    started = ex.dict(n=0)
    lock = ex.Lock()
    try:
        it = ex.map(tasks.count_then_wait, itertools.repeat((started, lock, release), 10))
        assert wait_until(lambda: started["n"] >= size, timeout=30), f"only {started['n']} of {size} workers got work"
        release.set()
        assert list(it) == [1] * 10
    finally:
        release.set()

