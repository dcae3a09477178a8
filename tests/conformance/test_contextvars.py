"""Ecosystem clause 4: on the in-process kinds each task runs in a copy of
the submitter's ``contextvars`` context (as ``asyncio.to_thread`` does)."""

from __future__ import annotations

import contextvars
from typing import Any

import pytest

from unifex.testing import tasks

IN_PROCESS = ("thread", "pool", "serial", "gevent", "greenlet")


@pytest.mark.kinds(*IN_PROCESS)
def test_task_sees_the_submitters_context(ex: Any) -> None:
    def run() -> Any:
        tasks.set_ctx_var("from-the-caller")
        return (
            ex.submit(tasks.get_ctx_var).result(timeout=30),
            ex.apply_async(tasks.get_ctx_var).get(timeout=30),
            list(ex.map(tasks.get_ctx_var, range(3))),
            ex.starmap(tasks.get_ctx_var, [(1,)]),
        )

    got = contextvars.copy_context().run(run)
    assert got == ("from-the-caller", "from-the-caller", ["from-the-caller"] * 3, ["from-the-caller"])


@pytest.mark.kinds(*IN_PROCESS)
def test_a_task_setting_a_variable_changes_only_its_copy(ex: Any) -> None:
    def run() -> Any:
        tasks.set_ctx_var("caller")
        inside = ex.submit(tasks.set_ctx_var_in_task, "task").result(timeout=30)
        return inside, tasks.get_ctx_var(), ex.submit(tasks.get_ctx_var).result(timeout=30)

    assert contextvars.copy_context().run(run) == ("task", "caller", "caller")
