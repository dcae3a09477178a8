"""Property tests: for random task lists, every kind returns exactly what a
plain loop returns, in ``map`` order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unifex.testing import tasks

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.timeout(180)
def test_map_equals_a_plain_loop(make_executor: Any) -> None:
    ex = make_executor(size=3)

    @SETTINGS
    @given(xs=st.lists(st.integers(-1000, 1000), max_size=60), chunksize=st.one_of(st.none(), st.integers(1, 8)), buffersize=st.one_of(st.none(), st.integers(1, 10)))
    def check(xs: list[int], chunksize: int | None, buffersize: int | None) -> None:
        assert list(ex.map(tasks.square, xs, chunksize=chunksize, buffersize=buffersize)) == [x * x for x in xs]
        assert sorted(ex.map(tasks.square, xs, chunksize=chunksize, ordered=False)) == sorted(x * x for x in xs)

    check()


@pytest.mark.timeout(180)
def test_submit_then_gather_equals_a_plain_loop(make_executor: Any) -> None:
    ex = make_executor(size=3)

    @SETTINGS
    @given(xs=st.lists(st.tuples(st.integers(0, 50), st.booleans()), max_size=40))
    def check(xs: list[tuple[int, bool]]) -> None:
        futures = [ex.submit(tasks.raise_at, x, x if bad else -1) for x, bad in xs]
        for (x, bad), fut in zip(xs, futures, strict=True):
            if bad:
                assert isinstance(fut.exception(timeout=30), tasks.TaskError)
            else:
                assert fut.result(timeout=30) == x * x

    check()


@pytest.mark.timeout(180)
def test_map_with_errors_matches_a_plain_loop_up_to_the_first_error(make_executor: Any) -> None:
    ex = make_executor(size=3)

    @SETTINGS
    @given(xs=st.lists(st.integers(0, 30), max_size=40), bad=st.integers(0, 30), chunksize=st.integers(1, 5))
    def check(xs: list[int], bad: int, chunksize: int) -> None:
        expected: list[int] = []
        for x in xs:
            if x == bad:
                break
            expected.append(x * x)
        got: list[int] = []
        try:
            for value in ex.map(tasks.raise_at, xs, [bad] * len(xs), chunksize=chunksize):
                got.append(value)
        except tasks.TaskError:
            assert bad in xs
        else:
            assert bad not in xs
        assert got == expected

    check()
