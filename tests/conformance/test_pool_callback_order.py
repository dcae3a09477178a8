"""Ecosystem clause "Pool spelling: callbacks and input errors": as in
``multiprocessing.Pool``, a task's ``callback``/``error_callback`` has run when
its ``get()``/``wait()`` returns and ``ready()`` is true; an error raised by the
iterable given to ``imap``/``imap_unordered`` comes from ``next()`` after the
results of the whole chunks read before it. (CPython's own Pool tests,
``tests/peer/mp_pool/``, check the same on every kind.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from unifex.testing import tasks


class InputError(ValueError):
    pass


def _source(good: int) -> Iterator[int]:
    yield from range(good)
    raise InputError(f"the input failed after {good} items")


def test_callbacks_have_run_when_get_and_wait_return(ex: Any) -> None:
    seen: list[Any] = []

    def slow_append(value: Any) -> None:
        time.sleep(0.05)  # widens the window a waiter would slip through; not synchronisation
        seen.append(value)

    assert ex.apply_async(tasks.add, (1, 2), callback=slow_append).get(timeout=30) == 3
    assert seen == [3]
    failed = ex.apply_async(tasks.fail, ("bad",), error_callback=slow_append)
    failed.wait(30)
    assert failed.ready()
    assert len(seen) == 2 and isinstance(seen[1], tasks.TaskError)
    assert ex.map_async(tasks.square, [1, 2, 3], callback=slow_append).get(timeout=30) == [1, 4, 9]
    assert seen[2] == [1, 4, 9]


@pytest.mark.parametrize(("chunksize", "yielded"), [(1, 7), (2, 6), (4, 4)])
def test_imap_input_error_comes_from_next_after_whole_chunks(ex: Any, chunksize: int, yielded: int) -> None:
    it = ex.imap(tasks.square, _source(7), chunksize)
    assert [next(it) for _ in range(yielded)] == [i * i for i in range(yielded)]
    with pytest.raises(InputError):
        next(it)


def test_imap_unordered_input_error_comes_from_next(ex: Any) -> None:
    it = ex.imap_unordered(tasks.square, _source(5), 1)
    got: list[int] = []
    with pytest.raises(InputError):
        for _ in range(6):
            got.append(next(it))
    assert sorted(got) == [i * i for i in range(5)]


def test_imap_input_error_at_the_first_item(ex: Any) -> None:
    it = ex.imap(tasks.square, _source(0))
    with pytest.raises(InputError):
        next(it)
