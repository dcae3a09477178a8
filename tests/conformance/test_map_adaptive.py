"""``map(chunksize=None)`` starts at once: the first result never waits for
inputs after it, on the kinds that batch too (they start with 1-item batches)."""

from __future__ import annotations

from typing import Any

import pytest

from unifex.testing import tasks


@pytest.mark.requires("concurrent")
@pytest.mark.parametrize("n", [40, 1000])
def test_the_first_result_does_not_wait_for_later_inputs(ex: Any, n: int) -> None:
    go, release = ex.Event(), ex.Event()
    go.set()
    # item 0 returns at once; every later one waits for ``release``, which is
    # set only once item 0's result is here: batching item 0 with any later
    # item would hang (the map's timeout turns that into a failure)
    it = ex.map(tasks.wait_event_then, [go] + [release] * (n - 1), range(n), timeout=120)
    try:
        assert next(it) == 0
        release.set()
        assert list(it) == list(range(1, n))
    finally:
        release.set()
        it.close()


def test_adaptive_batches_keep_order_errors_and_results(ex: Any) -> None:
    n = 3000
    assert list(ex.map(tasks.square, range(n))) == [i * i for i in range(n)]
    assert sorted(ex.map(tasks.square, iter(range(n)), ordered=False)) == [i * i for i in range(n)]
    it = ex.map(tasks.raise_at, range(n), [2500] * n)
    assert [next(it) for _ in range(2500)] == [i * i for i in range(2500)]
    with pytest.raises(tasks.TaskError, match="bad input 2500"):
        next(it)
