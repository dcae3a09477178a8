"""The ``dask`` kind under failure: callbacks that wait, exceptions of every
type, a worker that dies inside a ``map`` batch or inside a blocking helper
call, and accepted tasks at interpreter exit.

Tests that crash a worker start their own embedded cluster (the shared test
cluster serves other tests at the same time); the rest join the shared one.
No assertion on elapsed time: every wait has a generous timeout instead.
"""

from __future__ import annotations

import builtins
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

distributed = pytest.importorskip("distributed", reason="the dask kind needs distributed: pip install 'unifex[dask]'")

import unifex  # noqa: E402
from unifex.testing import dask_cluster, tasks  # noqa: E402

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="session")
def shared_address() -> str:
    return dask_cluster.address()


# -- task functions (module level: this test module travels by value) -----------------


def wait_then_return(gate: Any, value: int) -> int:
    assert gate.wait(60)
    return value


def raise_named_at(x: int, at: int, name: str) -> int:
    if x == at:
        raise getattr(builtins, name)()
    return x


def recurse(n: int) -> int:
    return recurse(n + 1) + 1


def crash_at(x: int, at: int) -> int:
    if x == at:
        os.kill(os.getpid(), signal.SIGKILL)
    return x


def report_pid_then_get(pids: Any, q: Any) -> Any:
    pids["pid"] = os.getpid()
    return q.get(timeout=120)


# -- callbacks ------------------------------------------------------------------------------


def test_a_callback_waiting_on_another_future_does_not_stall_the_executor(shared_address: str) -> None:
    seen: list[int] = []
    with unifex.executor("dask", address=shared_address, size=2) as ex:
        gate = ex.Event()
        later = ex.submit(wait_then_return, gate, 7)

        def on_first(_result: int) -> None:
            seen.append(later.result(timeout=60))

        first = ex.apply_async(tasks.square, (3,), callback=on_first)
        assert first.result(timeout=60) == 9
        gate.set()
        assert later.result(timeout=60) == 7
    # close() returned: every callback has run, and this one saw the other future
    assert seen == [7]


def test_close_from_a_callback_does_not_deadlock(shared_address: str) -> None:
    ex = unifex.executor("dask", address=shared_address, size=1)
    closed: list[bool] = []

    def close_it(_result: int) -> None:
        ex.close()
        try:
            ex.submit(tasks.square, 3)
        except unifex.ExecutorClosedError:
            closed.append(True)

    ex.apply_async(tasks.square, (2,), callback=close_it).result(timeout=60)
    ex.close()
    assert closed == [True]


# -- exceptions keep their type and their position -------------------------------------------


@pytest.mark.parametrize("name", ["SystemExit", "KeyboardInterrupt", "GeneratorExit", "RecursionError"])
@pytest.mark.parametrize("chunksize", [None, 4])
def test_map_raises_any_exception_type_at_its_position(shared_address: str, name: str, chunksize: int | None) -> None:
    with unifex.executor("dask", address=shared_address, size=2) as ex:
        it = ex.map(raise_named_at, range(40), [5] * 40, [name] * 40, chunksize=chunksize)
        got = [next(it) for _ in range(5)]
        with pytest.raises(getattr(builtins, name)):
            next(it)
    assert got == [0, 1, 2, 3, 4]


def test_a_recursion_error_comes_back_as_itself(shared_address: str) -> None:
    with unifex.executor("dask", address=shared_address, size=1) as ex:
        with pytest.raises(RecursionError) as info:
            ex.submit(recurse, 0).result(timeout=60)
        assert "recurse" in str(info.value.__cause__)
        with pytest.raises(SystemExit):
            ex.submit(raise_named_at, 1, 1, "SystemExit").result(timeout=60)


# -- a worker that dies ------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_a_crash_inside_a_map_batch_is_raised_at_its_item() -> None:
    # three workers: the crashing batch kills two in a row (its re-run finds the
    # item), and the cluster keeps a worker while the nannies restart them
    with unifex.executor("dask", size=3) as ex:
        it = ex.map(crash_at, range(1000), [537] * 1000, chunksize=125)  # the crash is inside the batch 500..624
        got = [next(it) for _ in range(537)]
        with pytest.raises(unifex.WorkerCrashedError) as info:
            next(it)
        assert got == list(range(537))
        assert info.value.exitcode == -signal.SIGKILL
        assert "input 537" in str(info.value)
        # the cluster replaced the worker and goes on
        assert list(ex.map(tasks.square, range(10))) == [i * i for i in range(10)]


@pytest.mark.timeout(240)
def test_a_worker_killed_in_queue_get_does_not_swallow_the_next_item() -> None:
    with unifex.executor("dask", size=2) as ex:
        q, pids = ex.Queue(), ex.dict()
        victim = ex.submit(report_pid_then_get, pids, q)
        assert tasks_wait(lambda: "pid" in pids, 60)
        os.kill(pids["pid"], signal.SIGKILL)
        q.put("after the kill")
        with pytest.raises(unifex.WorkerCrashedError):
            victim.result(timeout=60)
        assert q.get(timeout=60) == "after the kill"


def tasks_wait(predicate: Any, timeout: float) -> bool:
    from unifex.testing import wait_until

    return bool(wait_until(predicate, timeout=timeout))


# -- interpreter exit --------------------------------------------------------------------------


@pytest.mark.timeout(240)
def test_accepted_tasks_run_at_interpreter_exit(shared_address: str, tmp_path: Path) -> None:
    script = tmp_path / "leave_open.py"
    script.write_text(
        textwrap.dedent(
            """
            import sys
            from pathlib import Path

            import unifex
            from unifex.testing import tasks

            def touch(path):
                tasks.sleep_return(0.2)
                Path(path).touch()

            ex = unifex.executor("dask", address=sys.argv[1], size=1)
            for i in range(4):
                ex.submit(touch, str(Path(sys.argv[2]) / f"done-{i}"))
            # no close(): the interpreter exits with tasks still queued
            """
        )
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in [str(Path(unifex.__file__).parents[1]), os.environ.get("PYTHONPATH", "")] if p)}
    subprocess.run([sys.executable, str(script), shared_address, str(tmp_path)], check=True, timeout=180, env=env, capture_output=True)
    assert sorted(p.name for p in tmp_path.glob("done-*")) == [f"done-{i}" for i in range(4)]
