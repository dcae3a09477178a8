"""Contract, "Exploring schedules": ``unifex.sleep(0)`` is a switch point on every
in-process concurrent kind (on threads it yields the GIL, as ``time.sleep(0)``
does), so a race that ``unifex.testing.explore`` finds under ``greenlet`` can
also show on the kind the program runs on."""

from __future__ import annotations

from typing import Any

import pytest

import unifex

TRIES = 200  # each try runs the race once; one lost update is enough


def racy_increments(ex: Any, tasks: int) -> int:
    box = {"n": 0}

    def bump() -> None:
        n = box["n"]
        unifex.sleep(0)  # read ... switch point ... write
        box["n"] = n + 1

    for f in [ex.submit(bump) for _ in range(tasks)]:
        f.result(timeout=30)
    return box["n"]


@pytest.mark.kinds("thread", "pool", "gevent", "greenlet")
@pytest.mark.timeout(120)
def test_a_lost_update_with_sleep_0_between_read_and_write_shows(make_executor: Any) -> None:
    ex = make_executor(size=4)
    results = []
    for _ in range(TRIES):
        results.append(racy_increments(ex, 4))
        if results[-1] < 4:
            return
    pytest.fail(f"no lost update in {TRIES} tries (results {sorted(set(results))}): unifex.sleep(0) did not let another task run")
