"""Lifecycle 5: ``logging`` records emitted in ``process`` and ``dask`` workers
reach the parent's ``logging`` with the task's name (``task_name``) and the
worker's pid (``worker_pid``) as record attributes; a failed task's exception
carries the last lines its worker wrote to stdout/stderr in its ``__notes__``."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from unifex.testing import lifecycle_tasks as lt
from unifex.testing import wait_until

pytestmark = [pytest.mark.kinds("process", "dask"), pytest.mark.worker_start]


@pytest.mark.timeout(60)
def test_worker_logging_records_reach_the_parent(make_executor: Any, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING)
    ex = make_executor(size=1)
    pid = ex.submit(lt.log_and_fail, "hello from a worker").result(timeout=30)

    def arrived() -> list[logging.LogRecord]:
        return [r for r in caplog.records if r.getMessage() == "hello from a worker"]

    assert wait_until(lambda: bool(arrived()), timeout=30)
    record = arrived()[0]
    assert record.name == "unifex.test"
    assert record.levelno == logging.WARNING
    assert record.worker_pid == pid  # type: ignore[attr-defined]
    assert "log_and_fail" in record.task_name  # type: ignore[attr-defined]


@pytest.mark.timeout(60)
def test_a_failed_task_carries_its_workers_last_output_lines(ex: Any) -> None:
    with pytest.raises(ValueError, match="failed after printing") as info:
        ex.submit(lt.print_and_fail, "marker-7").result(timeout=30)
    notes = "\n".join(getattr(info.value, "__notes__", []))
    assert "stdout: out: marker-7" in notes
    assert "stderr: err: marker-7" in notes


@pytest.mark.timeout(60)
def test_a_successful_task_adds_no_notes_to_later_errors(ex: Any) -> None:
    assert ex.submit(lt.log_and_fail, "quiet").result(timeout=30)
    with pytest.raises(ValueError) as info:
        ex.submit(lt.log_and_fail, "boom", True).result(timeout=30)
    assert not any("out: " in note for note in getattr(info.value, "__notes__", []))
