"""The ``greenlet`` kind beside raw ``gevent.pool.Pool`` (its nearest raw
library) and the ``gevent`` kind, group by group:

* ``greenlet-switching``: 100 tasks that each yield 100 times
  (``unifex.sleep(0)``; raw gevent: ``gevent.sleep(0)``). The issue's target:
  the greenlet scheduler at least as fast as the gevent kind;
* ``greenlet-submit-result``: one task at a time, submit then wait for its result;
* ``greenlet-queue-ping-pong``: two tasks pass a token back and forth through
  two queues (the kind's helpers; raw: ``gevent.queue.Queue``).

Only one executor is open at a time (each benchmark makes its own), so no
cooperative scheduler of another kind sits in the thread while one is timed.

Run: ``python3 -m pytest benchmarks/test_greenlet.py --benchmark-only``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import gevent
import gevent.pool
import gevent.queue
import pytest

import unifex

TASKS = 100
SWITCHES = 100
PINGS = 1_000

SUBJECTS = ["raw gevent.pool.Pool", "gevent", "greenlet"]


def noop() -> int:
    return 1


def yield_unifex(n: int) -> int:
    for _ in range(n):
        unifex.sleep(0)
    return n


def yield_gevent(n: int) -> int:
    for _ in range(n):
        gevent.sleep(0)
    return n


def ping(inbox: Any, outbox: Any, n: int) -> int:
    for i in range(n):
        outbox.put(i)
        inbox.get()
    return n


def pong(inbox: Any, outbox: Any, n: int) -> int:
    for _ in range(n):
        outbox.put(inbox.get())
    return n


class Subject:
    """What one benchmark needs from a subject: spawn a task, gather results, make a queue."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.ex: Any = None
        self.pool: Any = None
        if name == "raw gevent.pool.Pool":
            self.pool = gevent.pool.Pool(TASKS)
            self.spawn: Callable[..., Any] = self.pool.spawn
            self.queue: Callable[[], Any] = gevent.queue.Queue
            self.yielder = yield_gevent
        else:
            self.ex = unifex.executor(name, size=TASKS)
            self.spawn = self.ex.submit
            self.queue = self.ex.Queue
            self.yielder = yield_unifex

    def result(self, handle: Any) -> Any:
        return handle.get() if self.pool is not None else handle.result()

    def close(self) -> None:
        if self.pool is not None:
            self.pool.kill()
        else:
            self.ex.close()


@pytest.fixture(params=SUBJECTS)
def subject(request: pytest.FixtureRequest) -> Iterator[Subject]:
    s = Subject(request.param)
    s.result(s.spawn(noop))  # warm up: the hub or scheduler exists before timing
    yield s
    s.close()


@pytest.mark.benchmark(group="greenlet-switching")
def test_switching_tasks(benchmark: Any, subject: Subject) -> None:
    def run() -> int:
        handles = [subject.spawn(subject.yielder, SWITCHES) for _ in range(TASKS)]
        return sum(subject.result(h) for h in handles)

    benchmark.extra_info["switches_per_round"] = TASKS * SWITCHES
    assert benchmark.pedantic(run, rounds=20, warmup_rounds=2) == TASKS * SWITCHES


@pytest.mark.benchmark(group="greenlet-submit-result")
def test_submit_result(benchmark: Any, subject: Subject) -> None:
    assert benchmark(lambda: subject.result(subject.spawn(noop))) == 1


@pytest.mark.benchmark(group="greenlet-queue-ping-pong")
def test_queue_ping_pong(benchmark: Any, subject: Subject) -> None:
    def run() -> int:
        a, b = subject.queue(), subject.queue()
        handles = [subject.spawn(ping, a, b, PINGS), subject.spawn(pong, b, a, PINGS)]
        return sum(subject.result(h) for h in handles)

    benchmark.extra_info["round_trips_per_round"] = PINGS
    assert benchmark.pedantic(run, rounds=20, warmup_rounds=2) == 2 * PINGS
