"""The ``gevent`` kind beside raw ``gevent.pool.Pool``, group by group:

* ``gevent-submit-result``: one task at a time, submit then wait for its result
  (the issue's target: unifex within 1.2x of ``Pool.spawn(f).get()``);
* ``gevent-batch``: submit 1,000 tasks, then gather them all;
* ``gevent-map``: ``map`` of 10,000 ``x * x``.

Run: ``python3 -m pytest benchmarks/test_gevent.py --benchmark-only``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import gevent.pool
import pytest

import unifex

SIZE = 5
BATCH = 1_000
MAP_N = 10_000


def noop() -> int:
    return 1


def square(x: int) -> int:
    return x * x


@pytest.fixture(scope="module")
def raw_pool() -> Iterator[Any]:
    pool = gevent.pool.Pool(SIZE)
    yield pool
    pool.kill()


@pytest.fixture(scope="module")
def ex() -> Iterator[Any]:
    with unifex.executor("gevent", size=SIZE) as executor:
        yield executor


@pytest.mark.benchmark(group="gevent-submit-result")
def test_raw_gevent_spawn_get(benchmark: Any, raw_pool: Any) -> None:
    assert benchmark(lambda: raw_pool.spawn(noop).get()) == 1


@pytest.mark.benchmark(group="gevent-submit-result")
def test_unifex_gevent_submit_result(benchmark: Any, ex: Any) -> None:
    assert benchmark(lambda: ex.submit(noop).result()) == 1


@pytest.mark.benchmark(group="gevent-batch")
def test_raw_gevent_spawn_batch(benchmark: Any, raw_pool: Any) -> None:
    def batch() -> int:
        glets = [raw_pool.spawn(noop) for _ in range(BATCH)]
        return sum(g.get() for g in glets)

    assert benchmark(batch) == BATCH


@pytest.mark.benchmark(group="gevent-batch")
def test_unifex_gevent_submit_batch(benchmark: Any, ex: Any) -> None:
    def batch() -> int:
        futures = [ex.submit(noop) for _ in range(BATCH)]
        return sum(f.result() for f in futures)

    assert benchmark(batch) == BATCH


@pytest.mark.benchmark(group="gevent-map")
def test_raw_gevent_imap(benchmark: Any, raw_pool: Any) -> None:
    assert benchmark(lambda: sum(raw_pool.imap(square, range(MAP_N)))) == sum(x * x for x in range(MAP_N))


@pytest.mark.benchmark(group="gevent-map")
def test_unifex_gevent_map(benchmark: Any, ex: Any) -> None:
    assert benchmark(lambda: sum(ex.map(square, range(MAP_N)))) == sum(x * x for x in range(MAP_N))
