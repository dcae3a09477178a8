"""Lifecycle 1: ``initializer``/``initargs``/``finalizer`` on every kind (serial
runs them once); a raising initializer fails the tasks its worker would have
run with its own error, and the executor neither spins nor hangs (CPython's
``InitializerTest`` is the yardstick)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import unifex
from unifex.testing import KindConfig, tasks
from unifex.testing import lifecycle_tasks as lt

from ._lifecycle import LIFECYCLE_KINDS

pytestmark = [pytest.mark.kinds(*LIFECYCLE_KINDS), pytest.mark.worker_start]


@pytest.mark.timeout(60)
def test_initializer_runs_before_the_first_task(make_executor: Any) -> None:
    ex = make_executor(size=2, initializer=lt.init_state, initargs=("ready",))
    assert ex.submit(lt.read_state).result(timeout=30) == ("ready", 1)


@pytest.mark.timeout(60)
def test_a_raising_initializer_fails_every_task_with_its_error(make_executor: Any) -> None:
    ex = make_executor(size=2, initializer=lt.init_fail)
    futures = [ex.submit(tasks.square, i) for i in range(6)]
    for fut in futures:
        with pytest.raises(LookupError, match="on purpose") as info:
            fut.result(timeout=30)
        notes = " ".join(getattr(info.value, "__notes__", []))
        assert "init_fail" in notes  # the error names the initializer
    with pytest.raises(LookupError):
        list(ex.map(tasks.square, range(4)))
    ex.close(wait=True)  # returns: no worker spins restarting


@pytest.mark.timeout(60)
def test_finalizer_runs_once_per_worker_at_close(make_executor: Any, tmp_path: Path) -> None:
    record = tmp_path / "finalized"
    ex = make_executor(size=2, initializer=lt.init_state, initargs=("x", str(record)), finalizer=lt.finalize_to_file)
    tokens = set(ex.map(lt.worker_token, range(20)))
    assert not record.exists()
    ex.close(wait=True)
    finalized = record.read_text().split()
    # every worker that ran a task finalized, and no worker twice (a worker
    # started on demand that found no task left may finalize too)
    assert tokens <= set(finalized)
    assert len(finalized) == len(set(finalized))


@pytest.mark.parametrize(
    ("options", "error", "match"),
    [
        ({"initializer": 3}, TypeError, "initializer"),
        ({"finalizer": "x"}, TypeError, "finalizer"),
        ({"initializer": print, "initargs": 5}, TypeError, "initargs"),
        ({"max_tasks_per_worker": 0}, ValueError, "max_tasks_per_worker"),
    ],
)
def test_bad_worker_options_raise_the_same_error(kind_config: KindConfig, options: dict[str, Any], error: type[Exception], match: str) -> None:
    with pytest.raises(error, match=match):
        unifex.executor(kind_config.kind, size=1, **{**kind_config.options, **options})
