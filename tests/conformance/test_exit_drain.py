"""Reliability 12 / ecosystem clause 1: at normal interpreter exit, the tasks an
executor accepted run to the end (what ``concurrent.futures`` does), on every
kind, also after ``close(wait=False)``; a submit after that raises."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from typing import Any

import pytest

# a start method can change this clause: run it under each (see unifex.testing)
pytestmark = pytest.mark.worker_start


PROGRAM = """
import sys, time
import unifex

def slow_print(i):
    time.sleep(0.2)
    sys.stdout.write(f"done {{i}}\\n")
    sys.stdout.flush()

if __name__ == "__main__":
    ex = unifex.executor({kind!r}, 2{options})
    for i in range(4):
        ex.submit(slow_print, i)
    {ending}
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("ending", ["pass", "ex.close(wait=False)"], ids=["left-open", "closed-without-wait"])
def test_accepted_tasks_run_at_exit(kind_config: Any, ending: str, tmp_path: Any) -> None:
    # a joined dask cluster belongs to this test session: the program starts its own
    options = "" if kind_config.kind == "dask" else "".join(f", {k}={v!r}" for k, v in kind_config.options.items())
    script = tmp_path / "exit.py"
    script.write_text(textwrap.dedent(PROGRAM.format(kind=kind_config.kind, options=options, ending=ending)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=170, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert sorted(re.findall(r"done (\d)", out.stdout)) == ["0", "1", "2", "3"], out.stderr


HALF_MADE = """
import unifex
from unifex._backends.thread import ThreadExecutor

KEEP = []

class Broken(ThreadExecutor):
    def __init__(self, size=None):
        super().__init__(size)
        KEEP.append(self)  # still referenced at exit, as a dask executor whose cluster failed was
        del self._threads  # half made: closing it would fail
        raise RuntimeError("the cluster would not start")

try:
    Broken(2)
except RuntimeError:
    pass
with unifex.executor("thread", 2) as ex:
    assert ex.submit(abs, -1).result() == 1
print("ok")
"""


@pytest.mark.timeout(60)
def test_an_executor_whose_construction_failed_is_not_closed_at_exit(tmp_path: Any) -> None:
    """Only executors that were built are closed at exit: closing a half-made one
    logged an AttributeError (and one more from its repr) when the program ended."""
    script = tmp_path / "half.py"
    script.write_text(HALF_MADE)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=50, env=env, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"
    assert "interpreter exit failed" not in out.stderr and "Traceback" not in out.stderr, out.stderr
