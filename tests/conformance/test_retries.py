"""Lifecycle 3: ``retries``/``retry_on``/``backoff`` on ``apply_async`` and
``map`` (and as executor-wide defaults): a task that fails with one of the
``retry_on`` types (default: a worker crash, a per-task timeout, an
``OSError``) runs again, up to ``retries`` times; the future counts its
attempts and raises the last error with the earlier ones chained."""

from __future__ import annotations

from concurrent.futures import CancelledError
from pathlib import Path
from typing import Any

import pytest

import unifex
from unifex.testing import KindConfig, tasks, wait_until
from unifex.testing import lifecycle_tasks as lt

from ._lifecycle import LIFECYCLE_KINDS


@pytest.mark.timeout(60)
def test_a_failing_task_is_retried_until_it_succeeds(ex: Any, tmp_path: Path) -> None:
    fut = ex.apply_async(lt.fail_times, (str(tmp_path / "a"), 2, "done"), retries=3, backoff=0.01)
    assert fut.result(timeout=30) == "done"
    assert fut.attempts == 3
    assert [type(e) for e in fut.errors] == [OSError, OSError]


@pytest.mark.timeout(60)
def test_the_last_error_is_raised_with_the_earlier_ones_chained(ex: Any, tmp_path: Path) -> None:
    fut = ex.apply_async(lt.fail_times, (str(tmp_path / "a"), 10), retries=2, backoff=0)
    with pytest.raises(OSError, match="attempt 3 failed") as info:
        fut.result(timeout=30)
    assert fut.attempts == 3
    chain = []
    exc: BaseException | None = info.value
    while exc is not None:
        chain.append(str(exc))
        exc = exc.__cause__ or exc.__context__
    assert any("attempt 2 failed" in text for text in chain)
    assert any("attempt 1 failed" in text for text in chain)
    assert "attempt 3" in " ".join(getattr(info.value, "__notes__", []))


@pytest.mark.timeout(60)
def test_errors_outside_retry_on_are_not_retried(ex: Any, tmp_path: Path) -> None:
    path = tmp_path / "a"
    fut = ex.apply_async(lt.fail_times, (str(path), 5, "x", ValueError), retries=3, backoff=0)
    with pytest.raises(ValueError):
        fut.result(timeout=30)
    assert fut.attempts == 1
    fut = ex.apply_async(lt.fail_times, (str(tmp_path / "b"), 1, "x", ValueError), retries=3, retry_on=ValueError, backoff=0)
    assert fut.result(timeout=30) == "x"


@pytest.mark.timeout(60)
def test_a_timed_out_attempt_is_retried(ex: Any, tmp_path: Path) -> None:
    fut = ex.apply_async(lt.slow_first, (str(tmp_path / "a"), "second"), timeout=3, retries=1, backoff=0)
    assert fut.result(timeout=30) == "second"
    assert [type(e) for e in fut.errors] == [unifex.TaskTimeoutError]


@pytest.mark.requires("isolated_crash")
@pytest.mark.timeout(60)
def test_a_crashed_attempt_is_retried(ex: Any, tmp_path: Path) -> None:
    fut = ex.apply_async(lt.crash_first, (str(tmp_path / "a"), "alive"), retries=1, backoff=0)
    assert fut.result(timeout=30) == "alive"
    assert [type(e) for e in fut.errors] == [unifex.WorkerCrashedError]


@pytest.mark.timeout(60)
def test_map_retries_each_input(ex: Any, tmp_path: Path) -> None:
    paths = [str(tmp_path / f"m{i}") for i in range(8)]
    assert list(ex.map(lt.fail_times, paths, [1] * 8, range(8), retries=1, backoff=0)) == list(range(8))


@pytest.mark.timeout(60)
def test_map_in_batches_retries_from_the_failed_item(ex: Any, tmp_path: Path) -> None:
    paths = [str(tmp_path / f"m{i}") for i in range(9)]
    times = [1 if i % 3 else 0 for i in range(9)]  # two items per batch fail once each
    assert list(ex.map(lt.fail_times, paths, times, range(9), chunksize=3, retries=1, backoff=0)) == list(range(9))
    for i, path in enumerate(paths):
        assert Path(path).read_text().count("x") == 1 + times[i]  # no item ran more often than needed


@pytest.mark.timeout(60)
def test_map_raises_at_the_item_that_ran_out_of_retries(ex: Any, tmp_path: Path) -> None:
    paths = [str(tmp_path / f"m{i}") for i in range(6)]
    times = [0, 0, 0, 5, 0, 0]
    got = []
    with pytest.raises(OSError):
        for value in ex.map(lt.fail_times, paths, times, range(6), chunksize=2, retries=1, backoff=0):
            got.append(value)
    assert got == [0, 1, 2]


@pytest.mark.requires("concurrent")  # serial retries inside submit, sleeping the backoff there
@pytest.mark.timeout(60)
def test_cancelling_a_task_waiting_out_its_backoff(ex: Any, tmp_path: Path) -> None:
    fut = ex.apply_async(lt.fail_times, (str(tmp_path / "a"), 5), retries=3, backoff=30)
    assert wait_until(lambda: fut.attempts == 1, timeout=30)  # the first attempt failed: 15-30 s of backoff now
    assert fut.cancel()
    with pytest.raises(CancelledError):
        fut.result(timeout=5)


@pytest.mark.timeout(60)
def test_close_waits_for_the_retries(ex: Any, tmp_path: Path) -> None:
    fut = ex.apply_async(lt.fail_times, (str(tmp_path / "a"), 2, "late"), retries=2, backoff=0.05)
    ex.close(wait=True)
    assert fut.done() and fut.result() == "late"


@pytest.mark.kinds(*LIFECYCLE_KINDS)
@pytest.mark.timeout(60)
def test_executor_wide_default(make_executor: Any, tmp_path: Path) -> None:
    ex = make_executor(size=2, retries=2, backoff=0)
    assert ex.submit(lt.fail_times, str(tmp_path / "s"), 2).result(timeout=30) == "ok"
    assert ex.apply_async(lt.fail_times, (str(tmp_path / "a"), 1)).result(timeout=30) == "ok"
    assert list(ex.map(lt.fail_times, [str(tmp_path / "m")], [1])) == ["ok"]
    # a call's own arguments win
    with pytest.raises(OSError):
        ex.apply_async(lt.fail_times, (str(tmp_path / "b"), 1), retries=0).result(timeout=30)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"retries": -1}, ValueError, "retries"),
        ({"retries": 1, "retry_on": "OSError"}, TypeError, "retry_on"),
        ({"retries": 1, "backoff": -1}, ValueError, "backoff"),
    ],
)
def test_bad_retry_arguments_raise_the_same_error(ex: Any, kwargs: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        ex.apply_async(tasks.square, (2,), **kwargs)
    with pytest.raises(error, match=match):
        ex.map(tasks.square, [2], **kwargs)


@pytest.mark.kinds(*LIFECYCLE_KINDS)
def test_bad_executor_wide_retries(kind_config: KindConfig) -> None:
    with pytest.raises(ValueError, match="retries"):
        unifex.executor(kind_config.kind, size=1, retries=-2, **kind_config.options)


@pytest.mark.kinds("greenlet")
@pytest.mark.timeout(30)
def test_backoff_costs_no_wall_time_on_the_virtual_clock(make_executor: Any, tmp_path: Path) -> None:
    ex = make_executor(size=2, clock="virtual")
    start = ex.now()
    fut = ex.apply_async(lt.fail_times, (str(tmp_path / "a"), 2, "done"), retries=2, backoff=20)
    assert fut.result(timeout=1000) == "done"
    # two backoffs of at least 20/2 and 40/2 virtual seconds, within the 30 s hang guard
    assert ex.now() - start >= 30


@pytest.mark.requires("processes")
@pytest.mark.timeout(60)
def test_an_argument_that_cannot_travel_is_not_retried_and_close_returns(ex: Any) -> None:
    import threading

    with pytest.raises(unifex.SerializationError):  # from apply_async (process) or from the future (dask)
        ex.apply_async(tasks.identity, (threading.Lock(),), retries=2).result(timeout=30)
    with pytest.raises(unifex.SerializationError):
        list(ex.map(tasks.identity, [1, threading.Lock()], chunksize=1, retries=2))
    ex.close(wait=True)
