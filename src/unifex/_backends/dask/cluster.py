"""The embedded cluster of the ``dask`` kind and the nanny that reports how its
worker process ended, so a ``WorkerCrashedError`` can name the exit code or signal.

Runs in the submitting process (the cluster's scheduler and nannies live in
its event loop); the test suite's shared cluster is built from the same parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import dask
import distributed as _distributed
import distributed.core
from distributed import Nanny

__all__ = ["EMBEDDED_SCHEDULER_CONFIG", "ReportingNanny", "close_quietly", "close_workers", "exit_code", "local_cluster", "quiet_worker_logs", "stop_task"]

LocalCluster: Any = _distributed.LocalCluster
rpc: Any = _distributed.core.rpc

#: scheduler settings of the embedded cluster: a crash fails only its own task, at once
EMBEDDED_SCHEDULER_CONFIG = {
    "distributed.scheduler.allowed-failures": 0,
    "distributed.scheduler.worker-saturation": 1.0,
}
#: how long a crash report waits for the dead worker's exit code from its nanny
#: (longer on the embedded cluster, whose nannies are known to report it)
EXITCODE_WAIT = 1.0
EXITCODE_WAIT_EMBEDDED = 5.0
EXIT_KEY = "unifex-worker-exit"


class ReportingNanny(Nanny):  # type: ignore[misc]
    """A nanny that tells the scheduler how its worker process ended, so a
    ``WorkerCrashedError`` can name the exit code or signal."""

    _unifex_pid: int | None = None

    async def instantiate(self) -> Any:
        status = await super().instantiate()
        self._unifex_pid = self.pid
        return status

    def _on_worker_exit_sync(self, exitcode: int) -> None:
        pid = self._unifex_pid
        if pid is not None:
            with contextlib.suppress(Exception):
                self._ongoing_background_tasks.call_soon(self._unifex_report_exit, pid, exitcode)
        super()._on_worker_exit_sync(exitcode)  # type: ignore[no-untyped-call]

    async def _unifex_report_exit(self, pid: int, exitcode: int) -> None:
        with contextlib.suppress(Exception):
            await self.scheduler.set_metadata(keys=[EXIT_KEY, str(pid)], value=exitcode)


def local_cluster(n_workers: int, threads_per_worker: int, processes: bool, **kwargs: Any) -> Any:
    """A ``LocalCluster`` with the embedded settings: a crash fails only its own
    task at once, nannies that report exit codes, any free dashboard port."""
    with dask.config.set(EMBEDDED_SCHEDULER_CONFIG):
        return LocalCluster(
            n_workers=n_workers,
            threads_per_worker=threads_per_worker,
            processes=processes,
            dashboard_address=":0",  # any free port: several executors may run at once
            scheduler_kwargs={"dashboard": False},
            worker_class=ReportingNanny if processes else None,
            **kwargs,
        )


def exit_code(client: Any, pid: int, wait: float = EXITCODE_WAIT) -> int | None:
    """The exit code a :class:`ReportingNanny` reported for worker ``pid``,
    waiting up to ``wait`` seconds for it; None where no nanny of ours ran it."""
    end = time.monotonic() + wait
    while True:
        try:
            code = client.get_metadata([EXIT_KEY, str(pid)], default=None)
        except Exception:
            return None
        if code is not None or time.monotonic() >= end:
            return None if code is None else int(code)
        time.sleep(0.05)


async def close_workers(workers: list[Any]) -> None:
    """Close an embedded cluster's workers with a short grace: running tasks die with them."""
    await asyncio.gather(*(w.close(timeout=0.5, reason="unifex-terminate") if isinstance(w, Nanny) else w.close(executor_wait=False) for w in workers), return_exceptions=True)


#: how long a worker being stopped may take to close before its nanny kills it
STOP_GRACE = 0.5


async def stop_task(scheduler: Any, key: str, client_id: str) -> None:
    """Stop the running task ``key`` on the embedded cluster, in the scheduler's
    event loop: dask forgets it, the scheduler lets go of the worker that runs
    it as if that worker were leaving (so its other tasks go to other workers
    instead of failing as ``KilledWorker``), and the worker's nanny kills the
    process and starts a new one. A task that already ended is only forgotten."""
    ts = scheduler.tasks.get(key)
    ws = ts.processing_on if ts is not None else None
    scheduler.stimulus_cancel([key], client_id, True, "unifex-stop", "stopped: the asyncio task awaiting it was cancelled")
    if ws is None or not ws.nanny or ws.address not in scheduler.workers:
        return
    await scheduler.remove_worker(ws.address, stimulus_id=f"unifex-stop-{time.time()}", expected=True, close=False)
    async with rpc(ws.nanny, connection_args=scheduler.connection_args) as nanny:
        await nanny.kill(timeout=STOP_GRACE, reason="unifex-stop")


#: how long a closing worker process may take before its nanny kills it (and
#: logs a warning): generous, since a busy machine closes slowly
CLOSE_GRACE = 20.0


def quiet_worker_logs() -> None:
    """Run in each worker process of the embedded cluster as it closes: the
    heartbeat errors of workers outliving their scheduler by a moment are
    not the program's output."""
    logging.getLogger("distributed").setLevel(logging.CRITICAL)


async def close_quietly(workers: list[Any]) -> None:
    """Close the embedded cluster's workers before its scheduler, each with a
    generous grace, so that no worker reports a lost scheduler and no nanny
    warns that it had to kill one."""
    await asyncio.gather(*(w.close(timeout=CLOSE_GRACE, reason="unifex-close") if isinstance(w, Nanny) else w.close() for w in workers), return_exceptions=True)
