"""Per-task timeouts, terminate(), and workers outliving a killed parent: the
worker is killed (SIGTERM, then SIGKILL), reaped and replaced."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from typing import Any

import pytest
from _process_util import START_METHODS, ignore_sigterm_then_sleep, pid_exists, pid_then_sleep, wait_gone

import unifex
from unifex.testing import tasks, wait_until


@pytest.fixture(params=START_METHODS)
def start_method(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def ex(start_method: str) -> Iterator[Any]:
    executor = unifex.executor("process", size=2, start_method=start_method)
    yield executor
    executor.terminate()


@pytest.mark.timeout(60)
def test_timeout_kills_reaps_and_replaces_the_worker(ex: Any) -> None:
    pids = ex.dict()
    fut = ex.apply_async(pid_then_sleep, (60, pids), timeout=0.5)
    with pytest.raises(unifex.TaskTimeoutError, match=r"pid_then_sleep\(60, .*timeout of 0.5 s"):
        fut.result(timeout=30)
    (pid,) = pids.keys()
    assert not wait_gone([pid], 5), "the timed-out worker is still there (or a zombie)"
    assert ex.submit(tasks.square, 3).result(timeout=30) == 9


@pytest.mark.timeout(60)
def test_timeout_kills_a_worker_that_ignores_sigterm(ex: Any) -> None:
    pids = ex.dict()
    fut = ex.apply_async(ignore_sigterm_then_sleep, (60, pids), timeout=0.5)
    with pytest.raises(unifex.TaskTimeoutError):
        fut.result(timeout=30)
    assert wait_until(lambda: len(pids) == 1, timeout=10)
    (pid,) = pids.keys()
    # it ignores SIGTERM and sleeps 60 s: gone means SIGKILL followed
    assert not wait_gone([pid], 20)
    assert ex.submit(tasks.square, 4).result(timeout=30) == 16


@pytest.mark.timeout(60)
def test_terminate_kills_and_reaps(ex: Any) -> None:
    pids = ex.dict()
    running = [ex.submit(ignore_sigterm_then_sleep, 60, pids) for _ in range(2)]
    queued = [ex.submit(tasks.square, i) for i in range(5)]
    assert wait_until(lambda: len(pids) == 2, timeout=30)
    ex.terminate()
    # they ignore SIGTERM and sleep 60 s: terminate() escalated to SIGKILL and reaped them
    assert not [p for p in pids if pid_exists(p)]
    for fut in running:
        with pytest.raises(unifex.TerminatedError):
            fut.result(timeout=5)
    assert all(f.cancelled() for f in queued)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("start_method", ["spawn", "forkserver"])
def test_timeout_counts_from_when_the_call_starts(start_method: str) -> None:
    """Issue 14.13: a worker that is slow to start (here its initializer sleeps
    longer than the timeout) does not eat into the task's timeout."""
    with unifex.executor("process", size=1, start_method=start_method, initializer=time.sleep, initargs=(1.5,)) as ex:
        fut = ex.apply_async(tasks.square, (5,), timeout=0.5)
        assert fut.result(timeout=60) == 25
        slow = ex.apply_async(tasks.sleep_return, (60, "late"), timeout=0.5)
        with pytest.raises(unifex.TaskTimeoutError, match=r"timeout of 0\.5 s"):
            slow.result(timeout=60)


@pytest.mark.timeout(60)
def test_max_tasks_per_worker_replaces_workers(start_method: str) -> None:
    with unifex.executor("process", size=1, start_method=start_method, max_tasks_per_worker=2) as ex:
        pids = [ex.submit(tasks.getpid).result(timeout=30) for _ in range(6)]
    assert pids[0] == pids[1] and pids[2] == pids[3] and pids[4] == pids[5]
    assert len(set(pids)) == 3


PARENT = """
import sys, time
import unifex
from _process_util import pid_then_sleep
if __name__ == "__main__":
    ex = unifex.executor("process", size=2, start_method=sys.argv[1])
    pids = ex.dict()
    futures = [ex.submit(pid_then_sleep, 60, pids) for _ in range(2)]
    while len(pids) < 2:
        time.sleep(0.01)
    print(" ".join(str(p) for p in pids.keys()), flush=True)
    time.sleep(60)
"""


@pytest.mark.timeout(60)
def test_workers_exit_when_the_parent_is_killed(start_method: str, tmp_path: Any) -> None:
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(PARENT))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), *sys.path])}
    proc = subprocess.Popen([sys.executable, str(script), start_method], stdout=subprocess.PIPE, env=env, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        pids = [int(p) for p in line.split()]
        assert len(pids) == 2, line
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert not wait_gone(pids, 5), "workers outlived their killed parent by more than 5 s"
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
