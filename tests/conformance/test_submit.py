"""SPEC 2: ``submit`` schedules ``fn(*args, **kwargs)``; SPEC 3: a task's
exception is raised by ``result()`` with its original type."""

from __future__ import annotations

from typing import Any

import pytest

import unifex
from unifex.testing import tasks

# a start method can change this clause: run it under each (see unifex.testing)
pytestmark = pytest.mark.worker_start

def test_submit_passes_args_and_kwargs(ex: Any) -> None:
    assert ex.submit(tasks.add, 1, 2, 3, c=4).result(timeout=30) == 10
    assert ex.submit(tasks.echo, 1, "a", key=None).result(timeout=30) == ((1, "a"), {"key": None})


def test_many_tasks_all_complete(ex: Any) -> None:
    futures = [ex.submit(tasks.square, i) for i in range(200)]
    assert [f.result(timeout=60) for f in futures] == [i * i for i in range(200)]


def test_exception_keeps_its_type_and_message(ex: Any) -> None:
    fut = ex.submit(tasks.fail, "it broke")
    with pytest.raises(tasks.TaskError, match="it broke"):
        fut.result(timeout=30)
    assert isinstance(fut.exception(timeout=30), tasks.TaskError)


def test_builtin_exception_types_survive(ex: Any) -> None:
    with pytest.raises(ZeroDivisionError):
        ex.submit(divmod, 1, 0).result(timeout=30)
    with pytest.raises(KeyError):
        ex.submit({}.__getitem__, "missing").result(timeout=30)


def test_a_failing_task_harms_no_other_task(ex: Any) -> None:
    futures = [ex.submit(tasks.raise_at, i, 5) for i in range(10)]
    for i, fut in enumerate(futures):
        if i == 5:
            with pytest.raises(tasks.TaskError):
                fut.result(timeout=30)
        else:
            assert fut.result(timeout=30) == i * i


@pytest.mark.requires("concurrent")
def test_submit_returns_before_the_task_finishes(make_executor: Any) -> None:
    ex = make_executor(size=2)
    release = ex.Event()
    try:
        fut = ex.submit(tasks.wait_event_then, release, "done")
        assert not fut.done()
        release.set()
        assert fut.result(timeout=30) == "done"
    finally:
        release.set()


def test_serial_runs_at_submit_in_the_caller() -> None:
    import threading

    with unifex.executor("serial") as ex:
        fut = ex.submit(tasks.thread_ident)
        assert fut.done()
        assert fut.result() == threading.get_ident()
