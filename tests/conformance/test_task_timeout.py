"""SPEC 2: a per-task ``timeout`` fails the future with ``TaskTimeoutError``
at the deadline; where the model can stop the task it is stopped, and on
threads the task's next ``unifex.sleep`` or blocking helper call raises
``TaskTimeoutError`` inside it."""

from __future__ import annotations

from typing import Any

import pytest

import unifex
from unifex.testing import KindConfig, tasks

# a start method can change this clause: run it under each (see unifex.testing)
pytestmark = pytest.mark.worker_start


@pytest.mark.timeout(60)
def test_timeout_fails_the_future_with_task_timeout_error(ex: Any, tmp_path: Any) -> None:
    marker = tmp_path / "finished"
    fut = ex.apply_async(tasks.sleep_steps_then_touch, (100, 0.05, str(marker)), timeout=0.3)
    with pytest.raises(unifex.TaskTimeoutError) as info:
        fut.result(timeout=30)
    assert isinstance(info.value, TimeoutError)
    assert not marker.exists()  # failed at the deadline, not when the task's 5 s of sleeps ended
    # stopped (process, gevent, greenlet) or raised inside at its next sleep (threads, dask):
    # once every worker is done, the task never reached its end
    ex.close(wait=True)
    assert not marker.exists()


@pytest.mark.timeout(60)
def test_a_task_that_computes_past_its_timeout_fails(ex: Any) -> None:
    # It never yields, so no timer can interrupt it on the cooperative kinds; it
    # must still not return a result after its deadline.
    fut = ex.apply_async(tasks.spin, (0.5, "late"), timeout=0.1)
    with pytest.raises(unifex.TaskTimeoutError):
        fut.result(timeout=30)
    assert ex.apply_async(tasks.square, (3,), timeout=30).result(timeout=30) == 9


@pytest.mark.timeout(60)
def test_other_tasks_are_unaffected_by_a_timeout(ex: Any, tmp_path: Any) -> None:
    slow = ex.apply_async(tasks.sleep_steps_then_touch, (100, 0.05, str(tmp_path / "x")), timeout=0.2)
    fast = [ex.apply_async(tasks.square, (i,), timeout=30) for i in range(5)]
    with pytest.raises(unifex.TaskTimeoutError):
        slow.result(timeout=30)
    assert [f.result(timeout=30) for f in fast] == [0, 1, 4, 9, 16]
    assert ex.submit(tasks.square, 9).result(timeout=30) == 81


@pytest.mark.requires("concurrent")
@pytest.mark.timeout(60)
def test_blocking_helper_call_ends_at_the_deadline(ex: Any, kind_config: KindConfig) -> None:
    event = ex.Event()
    try:
        fut = ex.apply_async(tasks.wait_event_in_task, (event,), timeout=0.3)
        with pytest.raises(unifex.TaskTimeoutError):
            fut.result(timeout=30)
    finally:
        event.set()


def test_timeout_error_callback(ex: Any, tmp_path: Any) -> None:
    errors: list[BaseException] = []
    ex.apply_async(tasks.sleep_steps_then_touch, (100, 0.05, str(tmp_path / "y")), timeout=0.2, error_callback=errors.append)
    ex.close(wait=True)
    assert len(errors) == 1 and isinstance(errors[0], unifex.TaskTimeoutError)


def test_a_task_within_its_timeout_succeeds(ex: Any) -> None:
    assert ex.apply_async(tasks.sleep_return, (0.01, "ok"), timeout=30).result(timeout=30) == "ok"
