"""SPEC 3: ``unifex.wait`` and ``unifex.as_completed`` accept futures of any
kind, mixed."""

from __future__ import annotations

from typing import Any

import pytest

import unifex
from unifex.testing import tasks


def test_wait_all_completed(ex: Any) -> None:
    futures = [ex.submit(tasks.sleep_return, 0.01 * i, i) for i in range(6)]
    done, not_done = unifex.wait(futures, timeout=30)
    assert done == set(futures) and not not_done


def test_as_completed_yields_each_future_once(ex: Any) -> None:
    futures = [ex.submit(tasks.square, i) for i in range(10)]
    seen = list(unifex.as_completed(futures, timeout=30))
    assert sorted(seen, key=id) == sorted(futures, key=id)
    assert sorted(f.result() for f in seen) == [i * i for i in range(10)]


def test_mixed_with_a_thread_executor(ex: Any) -> None:
    with unifex.executor("thread", size=2) as other:
        mine = [ex.submit(tasks.square, i) for i in range(4)]
        theirs = [other.submit(tasks.square, i) for i in range(4, 8)]
        _done, not_done = unifex.wait(mine + theirs, timeout=30)
        assert not not_done
        assert sorted(f.result() for f in unifex.as_completed(mine + theirs, timeout=30)) == [i * i for i in range(8)]


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_first_completed_and_timeout(make_executor: Any) -> None:
    ex = make_executor(size=2)
    release = ex.Event()
    try:
        blocked = ex.submit(tasks.wait_event_then, release, "late")
        quick = ex.submit(tasks.square, 2)
        done, not_done = unifex.wait([blocked, quick], timeout=30, return_when=unifex.FIRST_COMPLETED)
        assert quick in done and blocked in not_done
        done, not_done = unifex.wait([blocked], timeout=0.1)
        assert not done and not_done == {blocked}
        with pytest.raises(TimeoutError):
            list(unifex.as_completed([blocked, quick], timeout=0.1))
        release.set()
        assert blocked.result(timeout=30) == "late"
    finally:
        release.set()


def test_first_exception(ex: Any) -> None:
    bad = ex.submit(tasks.fail)
    good = ex.submit(tasks.square, 3)
    done, _ = unifex.wait([bad, good], timeout=30, return_when=unifex.FIRST_EXCEPTION)
    assert bad in done


def test_bad_return_when() -> None:
    with pytest.raises(ValueError, match="return_when"):
        unifex.wait([], return_when="SOMETIMES")
