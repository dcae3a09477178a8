"""One dask cluster shared by every ``dask`` test of a session, in its own process.

Starting a ``LocalCluster`` costs about a second; the conformance suite has
about a hundred tests per kind. So the suite joins one cluster through
``address=``. It runs in a child process started on first use (during test
collection, before any test's leak-check snapshot) and stopped at session end
by the unifex pytest plugin, or at interpreter exit. Its scheduler, nannies and
worker processes are not children of the test process, so a worker restarted
after a crash is not counted as a leak; the child itself predates every test.

Run as ``python -m unifex.testing.dask_cluster WORKERS THREADS``: prints the
scheduler address on one line, then serves until its stdin closes.

``UNIFEX_DASK_EMBEDDED=1`` makes the ``dask`` kind's test configuration use an
embedded cluster per executor instead (the executor's default; about four
minutes for the conformance suite on 2 cores, against about 20 s shared).
"""

from __future__ import annotations

import atexit
import logging
import os
import subprocess
import sys
import threading
from typing import Any

__all__ = ["address", "configurations", "stop"]

#: worker processes x threads of the shared cluster: enough slots for the suite's
#: largest ``size`` that needs tasks running at once
WORKERS = 2
THREADS = 3
START_TIMEOUT = 60.0

_lock = threading.Lock()
_process: subprocess.Popen[str] | None = None
_address: str | None = None


def address() -> str:
    """The shared cluster's scheduler address, starting the cluster on first call."""
    global _process, _address
    with _lock:
        if _address is not None:
            return _address
        proc = subprocess.Popen(
            [sys.executable, "-m", "unifex.testing.dask_cluster", str(WORKERS), str(THREADS)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "DASK_DISTRIBUTED__SCHEDULER__ALLOWED_FAILURES": "0"},
        )
        assert proc.stdout is not None
        result: list[str] = []
        reader = threading.Thread(target=lambda: result.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
        reader.start()
        reader.join(START_TIMEOUT)
        line = result[0].strip() if result else ""
        if not line.startswith("tcp://"):
            proc.kill()
            proc.wait()
            raise RuntimeError(f"the shared dask test cluster did not start within {START_TIMEOUT:g} s (it printed {line!r}); run `python -m unifex.testing.dask_cluster 2 3` to see why")
        _process, _address = proc, line
        atexit.register(stop)
        return line


def stop() -> None:
    """Close the shared cluster if it was started; waits for its process to end."""
    global _process, _address
    with _lock:
        proc, _process, _address = _process, None, None
    if proc is None:
        return
    try:
        if proc.stdin is not None:
            proc.stdin.close()
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()


def configurations() -> list[tuple[str, dict[str, Any]]]:
    """The ``dask`` kind's test configurations: join the shared cluster, or an
    embedded cluster per executor with ``UNIFEX_DASK_EMBEDDED=1``."""
    if os.environ.get("UNIFEX_DASK_EMBEDDED") == "1":
        return [("dask-embedded", {})]
    return [("dask", {"address": address()})]


def _serve(workers: int, threads: int) -> None:
    from unifex.backends.dask.cluster import local_cluster

    with local_cluster(workers, threads, True, silence_logs=logging.ERROR) as cluster:
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()  # until the test session closes our stdin


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
