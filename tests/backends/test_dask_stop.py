"""Stopping one running task of the ``dask`` kind when the asyncio task that
awaits it is cancelled (issue 10.3).

On the embedded cluster (worker processes) the task's worker process is
killed and its nanny starts a new one, so a task stuck in ``time.sleep`` or in
a CPU loop really stops; the other tasks that worker was running are handed
to another worker and run again. On a joined cluster the task is forgotten by
dask and stops at its next unifex wait. No assertion on elapsed time: every
wait has a generous timeout instead.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import time
from typing import Any

import pytest

distributed = pytest.importorskip("distributed", reason="the dask kind needs distributed: pip install 'unifex[dask]'")
psutil = pytest.importorskip("psutil", reason="the test watches the worker process end through psutil")

import unifex  # noqa: E402
from unifex.testing import dask_cluster, tasks, wait_until  # noqa: E402

pytestmark = pytest.mark.timeout(240)


@pytest.fixture(scope="session")
def shared_address() -> str:
    return dask_cluster.address()


# -- task functions (module level: this test module travels by value) -----------------


def sleep_forever(pids: Any, name: str) -> str:
    pids[name] = os.getpid()
    time.sleep(600)  # no unifex wait: nothing but killing the process stops this
    pids[name + "-ended"] = True
    return "slept"


def spin_forever(pids: Any, name: str) -> str:
    pids[name] = os.getpid()
    end = time.monotonic() + 600
    while time.monotonic() < end:  # a CPU loop, no wait at all
        pass
    pids[name + "-ended"] = True
    return "spun"


def count_run_then_wait(runs: Any, started: Any, release: Any) -> str:
    runs["n"] = runs.get("n", 0) + 1
    runs[f"pid-{runs['n']}"] = os.getpid()
    started.set()
    assert release.wait(120)
    return "finished"


def worker_pid() -> int:
    return os.getpid()


async def _await(fut: Any) -> Any:
    return await fut


def cancel_its_awaiter(fut: Any, ready: Any) -> None:
    """Await ``fut`` in an asyncio task, cancel that task once ``ready()``."""

    async def main() -> None:
        waiter = asyncio.ensure_future(_await(fut))
        # let the awaiter reach its ``await``: cancelled before its first step it
        # never awaits ``fut``, so nothing asks to stop the task (under load, the
        # task was often running before this loop's first turn)
        await asyncio.sleep(0)
        while not ready():
            await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter

    asyncio.run(asyncio.wait_for(main(), 120))


def process_ends(pid: int, timeout: float) -> bool:
    try:
        psutil.Process(pid).wait(timeout)
    except psutil.NoSuchProcess:
        pass
    except psutil.TimeoutExpired:
        return False
    return not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE


# -- embedded cluster ---------------------------------------------------------------------


@pytest.mark.parametrize("body", [sleep_forever, spin_forever], ids=["time.sleep", "cpu-loop"])
def test_a_stopped_task_dies_with_its_worker_process(body: Any) -> None:
    ex: Any
    with unifex.executor("dask", size=2) as ex:
        pids = ex.dict()
        fut = ex.submit(body, pids, "victim")
        cancel_its_awaiter(fut, lambda: "victim" in pids)
        with pytest.raises(concurrent.futures.CancelledError, match="stopped"):
            fut.result(timeout=60)
        victim = pids["victim"]
        assert process_ends(victim, 60), f"the worker process {victim} running the stopped task is still alive"
        assert "victim-ended" not in pids  # the task never got past its sleep / loop
        # the nanny started a new worker: the executor goes on with both workers
        assert wait_until(lambda: len(ex._client.scheduler_info()["workers"]) == 2, timeout=60, interval=0.1)
        got = {ex.submit(worker_pid).result(timeout=60) for _ in range(4)}
        assert victim not in got


def test_the_other_task_of_the_stopped_worker_runs_again() -> None:
    ex: Any
    with unifex.executor("dask", size=2, threads_per_worker=2) as ex:
        # one worker of two threads: both tasks run in the same process
        client = ex._client
        doomed = sorted(client.scheduler_info()["workers"])[1]
        client.retire_workers([doomed], close_workers=True)
        assert wait_until(lambda: len(client.scheduler_info()["workers"]) == 1, timeout=60, interval=0.1)
        runs, started, release, pids = ex.dict(), ex.Event(), ex.Event(), ex.dict()
        other = ex.submit(count_run_then_wait, runs, started, release)
        assert started.wait(60)
        victim = ex.submit(sleep_forever, pids, "victim")
        cancel_its_awaiter(victim, lambda: "victim" in pids)
        with pytest.raises(concurrent.futures.CancelledError, match="stopped"):
            victim.result(timeout=60)
        assert pids["victim"] == runs["pid-1"]  # they shared the worker process
        assert process_ends(pids["victim"], 60)
        # the other task was handed to the new worker process: it runs again there
        assert wait_until(lambda: runs.get("n") == 2, timeout=120, interval=0.1)
        release.set()
        assert other.result(timeout=120) == "finished"
        assert runs["pid-2"] != runs["pid-1"]


def test_a_task_that_ended_meanwhile_is_not_stopped() -> None:
    # the awaiter is cancelled after the task finished: nothing to stop, the value stays
    with unifex.executor("dask", size=1) as ex:
        fut = ex.submit(tasks.square, 6)
        assert fut.result(timeout=60) == 36
        cancel_its_awaiter(fut, lambda: True)
        assert fut.result() == 36


# -- joined cluster -----------------------------------------------------------------------


def test_on_a_joined_cluster_the_task_stops_at_its_next_unifex_wait(shared_address: str) -> None:
    ex: Any
    with unifex.executor("dask", address=shared_address, size=2) as ex:
        started, release = ex.Event(), ex.Event()
        fut = ex.submit(tasks.signal_and_wait, started, release, "never")
        cancel_its_awaiter(fut, started.is_set)
        with pytest.raises(concurrent.futures.CancelledError, match="stopped"):
            fut.result(timeout=60)
        # dask forgot the task: its worker thread is free again, the executor goes on
        assert ex.submit(tasks.square, 3).result(timeout=60) == 9
        assert wait_until(lambda: not _unifex_tasks_on(ex._client, "signal_and_wait"), timeout=60, interval=0.1)


def _unifex_tasks_on(client: Any, name: str) -> list[str]:
    return [k for k in client.run_on_scheduler(lambda dask_scheduler: [str(k) for k in dask_scheduler.tasks]) if f"unifex-{name}-" in k]
