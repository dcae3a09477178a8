"""Ctrl-C while the caller waits, close(wait=False), finishing accepted work at
interpreter exit, and memory that stays flat over a long lazy map."""

from __future__ import annotations

import gc
import itertools
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import psutil
import pytest
from _process_util import SetsWhenCollected, wait_gone

import unifex
from unifex.testing import tasks, wait_until

INTERRUPTED = """
import sys, time
import unifex
from _process_util import pid_then_sleep
if __name__ == "__main__":
    with unifex.executor("process", size=2, start_method=sys.argv[1]) as ex:
        pids = ex.dict()
        if sys.argv[2] == "result":
            futures = [ex.submit(pid_then_sleep, 60, pids) for _ in range(2)]
            while len(pids) < 2:
                time.sleep(0.01)
            print(" ".join(map(str, pids.keys())), flush=True)
            futures[0].result()
        else:
            it = ex.map(pid_then_sleep, [60] * 10, [pids] * 10)
            while len(pids) < 2:
                time.sleep(0.01)
            print(" ".join(map(str, pids.keys())), flush=True)
            list(it)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("start_method", ["forkserver", "spawn", "fork"])
@pytest.mark.parametrize("wait_on", ["result", "map"])
def test_ctrl_c_reaches_the_caller_and_terminates(tmp_path: Any, start_method: str, wait_on: str) -> None:
    script = tmp_path / "interrupted.py"
    script.write_text(textwrap.dedent(INTERRUPTED))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(__file__), *sys.path])}
    proc = subprocess.Popen(
        [sys.executable, str(script), start_method, wait_on],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
        start_new_session=True,  # its own process group, like a terminal's foreground job
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        line = proc.stdout.readline()
        if not re.fullmatch(r"\d+ \d+\n", line):
            proc.kill()
            pytest.fail(f"the program printed {line!r}, not two worker pids; its stderr: {proc.stderr.read()}")
        pids = [int(p) for p in line.split()]
        time.sleep(0.2)  # the caller is now blocked waiting
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C does: the whole group gets SIGINT
        proc.wait(20)  # the tasks sleep 60 s: ending at all shows the interrupt worked
        err = proc.stderr.read()
        assert proc.returncode != 0
        assert "KeyboardInterrupt" in err
        assert err.count("Traceback") == 1, err  # the caller's only: workers print nothing
        assert not wait_gone(pids, 5)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


AT_EXIT = """
import pathlib, sys
import unifex
def touch(path):
    import time
    time.sleep(0.3)
    pathlib.Path(path).write_text("done")
if __name__ == "__main__":
    ex = unifex.executor("process", size=1)
    ex.submit(touch, sys.argv[1])
    if sys.argv[2] == "close-nowait":
        ex.close(wait=False)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["forgotten", "close-nowait"])
def test_accepted_work_finishes_at_interpreter_exit(tmp_path: Any, how: str) -> None:
    script = tmp_path / "at_exit.py"
    script.write_text(textwrap.dedent(AT_EXIT))
    marker = tmp_path / "marker"
    out = subprocess.run([sys.executable, str(script), str(marker), how], capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    assert marker.read_text() == "done"


@pytest.mark.timeout(60)
def test_close_without_wait_then_with_wait() -> None:
    ex = unifex.executor("process", size=2)
    futures = [ex.submit(tasks.sleep_return, 0.05, i) for i in range(6)]
    ex.close(wait=False)
    with pytest.raises(unifex.ExecutorClosedError):
        ex.submit(tasks.square, 1)
    ex.close(wait=True)
    assert [f.result(timeout=0) for f in futures] == list(range(6))


@pytest.mark.timeout(120)
def test_map_memory_stays_flat_over_a_ten_million_item_generator() -> None:
    me = psutil.Process()
    with unifex.executor("process", size=2) as ex:
        it = ex.map(tasks.square, iter(range(10_000_000)), chunksize=2000)
        assert list(itertools.islice(it, 100_000)) == [i * i for i in range(100_000)]
        rss = me.memory_info().rss
        for _ in itertools.islice(it, 400_000):
            pass
        growth = me.memory_info().rss - rss
        it.close()  # type: ignore[attr-defined]
    assert growth < 20 * 2**20, f"RSS grew by {growth / 2**20:.1f} MiB while mapping 400,000 more items"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["returns", "raises"])
def test_worker_releases_a_tasks_arguments_when_it_ends(how: str) -> None:
    """Issue 14.14: not only when the worker runs its next task."""
    with unifex.executor("process", size=1) as ex:
        collected = ex.Event()
        flag = SetsWhenCollected(collected)  # the parent's copy stays alive meanwhile
        fn: Any = tasks.getpid if how == "returns" else tasks.fail
        fut = ex.submit(fn, flag)
        assert fut.exception(timeout=30) is None or how == "raises"
        assert collected.wait(20), "the worker still holds the finished task's argument"
        del flag


FORKED = """
import os, sys
import unifex
def square(x):
    return x * x
if __name__ == "__main__":
    ex = unifex.executor("process", size=2, start_method=sys.argv[1])
    print("parent", ex.submit(square, 3).result(timeout=60), flush=True)
    pid = os.fork()
    if pid == 0:
        with unifex.executor("process", size=2, start_method=sys.argv[1]) as mine:
            print("child", mine.submit(square, 4).result(timeout=60), flush=True)
        sys.exit(0)  # a normal exit: atexit handlers run
    _, status = os.waitpid(pid, 0)
    print("child exit", os.waitstatus_to_exitcode(status), flush=True)
    print("parent again", ex.submit(square, 5).result(timeout=60), flush=True)
    ex.close()
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("start_method", ["forkserver", "spawn", "fork"])
def test_a_forked_child_can_use_its_own_process_executor(tmp_path: Any, start_method: str) -> None:
    """Issue 14.15: after os.fork() with a live process executor."""
    script = tmp_path / "forked.py"
    script.write_text(textwrap.dedent(FORKED))
    out = subprocess.run([sys.executable, str(script), start_method], capture_output=True, text=True, timeout=100, check=False)
    assert out.stdout.split("\n")[:4] == ["parent 9", "child 16", "child exit 0", "parent again 25"], out.stdout + out.stderr
    assert "Traceback" not in out.stderr and "Error" not in out.stderr, out.stderr
    assert out.returncode == 0


FROM_STDIN = """
import sys
import unifex
class Point:
    def __init__(self, x):
        self.x = x
def double(p):
    return Point(p.x * 2)
with unifex.executor("process", size=2, **({"start_method": sys.argv[1]} if sys.argv[1] != "default" else {})) as ex:
    print(ex.submit(double, Point(3)).result(timeout=60).x, [p.x for p in ex.map(double, map(Point, range(4)))], flush=True)
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("start_method", ["default", "forkserver", "spawn", "fork"])
def test_a_program_read_from_stdin_can_use_process(start_method: str) -> None:
    """Issue 14.16: ``python3 - <<EOF``: functions and classes of ``__main__`` travel by value."""
    out = subprocess.run(
        [sys.executable, "-", start_method], input=textwrap.dedent(FROM_STDIN), capture_output=True, text=True, timeout=100, check=False
    )
    assert out.stdout.strip() == "6 [0, 2, 4, 6]", out.stdout + out.stderr
    assert out.returncode == 0


GEVENT_PATCHED = """
from gevent import monkey
monkey.patch_all()
import unifex
try:
    unifex.executor("process", size=2)
except RuntimeError as exc:
    print("refused:", exc, flush=True)
"""


@pytest.mark.timeout(120)
def test_process_refuses_a_gevent_patched_program_at_once() -> None:
    """Issue 14.3: tasks could never finish there; say why and what to do instead of hanging."""
    pytest.importorskip("gevent", reason="the check concerns programs patched by gevent")
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(GEVENT_PATCHED)], capture_output=True, text=True, timeout=100, check=False)
    assert out.stdout.startswith("refused: the 'process' kind cannot run in a program that gevent.monkey patched"), out.stdout + out.stderr
    assert "unifex.executor('gevent')" in out.stdout
    assert out.returncode == 0


@pytest.mark.timeout(120)
def test_a_dropped_executor_releases_its_workers_and_helpers() -> None:
    """Issue 14.14: dropped without close(), the executor is collected by reference
    counting alone (no cycle through its dispatcher thread), and its workers,
    threads and named semaphores go."""
    gc.disable()
    try:
        ex = unifex.executor("process", size=2)
        lock: Any = ex.Lock()
        name = lock._name
        futures = [ex.submit(tasks.getpid) for _ in range(4)]
        pids = {f.result(timeout=60) for f in futures}
        del ex, lock, futures
        assert not wait_gone(pids, 60), "the dropped executor's workers are still running"
        assert wait_until(lambda: not os.path.exists(f"/dev/shm/sem.{name[1:]}"), timeout=60)
        assert wait_until(lambda: not [t for t in threading.enumerate() if t.name.startswith("unifex-process")], timeout=60)
    finally:
        gc.enable()
