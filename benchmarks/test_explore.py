"""Schedules per second: :func:`unifex.testing.explore` beside the loop users
wrote by hand before it (``for s in range(N): executor("greenlet", seed=s)``),
on a small program (three tasks, a lock, a read-switch-write each).

* ``explore-schedules``: ``SCHEDULES`` schedules per round; the seed loop is
  the raw baseline (about 1,000 schedules per second on small programs), and
  ``explore`` with the random strategy and with the default portfolio must
  keep up with it.

Run: ``python3 -m pytest benchmarks/test_explore.py --benchmark-only``.
"""

from __future__ import annotations

from typing import Any

import pytest

import unifex
from unifex.testing import explore

SCHEDULES = 200


def program(ex: Any) -> None:
    lock = ex.Lock()
    box = {"n": 0}

    def bump() -> None:
        with lock:
            n = box["n"]
            unifex.sleep(0)
            box["n"] = n + 1

    for f in [ex.submit(bump) for _ in range(3)]:
        f.result()
    assert box["n"] == 3


def seed_loop() -> int:
    for seed in range(SCHEDULES):
        with unifex.executor("greenlet", seed=seed) as ex:
            program(ex)
    return SCHEDULES


def explore_random() -> int:
    return explore(program, schedules=SCHEDULES, strategy="random").schedules


def explore_portfolio() -> int:
    return explore(program, schedules=SCHEDULES).schedules


SUBJECTS = {"raw seed loop": seed_loop, "explore random": explore_random, "explore portfolio": explore_portfolio}


@pytest.mark.benchmark(group="explore-schedules")
@pytest.mark.parametrize("subject", list(SUBJECTS))
def test_schedules_per_second(benchmark: Any, subject: str) -> None:
    benchmark.extra_info["schedules_per_round"] = SCHEDULES
    assert benchmark.pedantic(SUBJECTS[subject], rounds=10, warmup_rounds=1) == SCHEDULES
