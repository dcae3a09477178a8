"""One dask cluster shared by every ``dask`` test of a session, in its own process.

Starting a ``LocalCluster`` costs about a second; the conformance suite has
about a hundred tests per kind. So the suite joins one cluster through
``address=``. Collection only plans it (:func:`configurations` reserves a free
port for its scheduler); it starts in a child process when the session starts,
before any test's leak-check snapshot (the unifex pytest plugin calls
:func:`start_planned` from a session fixture), or on the first :func:`address`
call, and stops at session end, or at interpreter exit. Its scheduler, nannies
and worker processes are not children of the test process, so a worker
restarted after a crash is not counted as a leak; the child itself predates
every test.

Run as ``python -m unifex.testing.dask_cluster WORKERS THREADS [PORT]``:
prints the scheduler address on one line, then serves until its stdin closes.

``UNIFEX_DASK_EMBEDDED=1`` makes the ``dask`` kind's test configuration use an
embedded cluster per executor instead (the executor's default; about four
minutes for the conformance suite on 2 cores, against about 20 s shared).
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import subprocess
import sys
import threading
from typing import Any

__all__ = ["address", "configurations", "start_planned", "stop"]

#: worker processes x threads of the shared cluster: one worker alone has
#: slots for the suite's largest ``size`` that needs tasks running at once, so
#: a test still holds while the other worker restarts after a crash test
WORKERS = 2
THREADS = 5
START_TIMEOUT = 60.0

_lock = threading.Lock()
_process: subprocess.Popen[str] | None = None
_address: str | None = None
_planned_port: int | None = None


def _planned_address() -> str:
    """The address the shared cluster will have, without starting it: a free
    port is reserved now for its scheduler."""
    global _planned_port
    with _lock:
        if _address is not None:
            return _address
        if _planned_port is None:
            with socket.socket() as probe:
                probe.bind(("127.0.0.1", 0))
                _planned_port = int(probe.getsockname()[1])
        return f"tcp://127.0.0.1:{_planned_port}"


def start_planned() -> None:
    """Start the shared cluster if a test configuration planned it."""
    if _planned_port is not None:
        address()


def address() -> str:
    """The shared cluster's scheduler address, starting the cluster on first call."""
    global _process, _address
    with _lock:
        if _address is not None:
            return _address
        port = [] if _planned_port is None else [str(_planned_port)]
        proc = subprocess.Popen(
            [sys.executable, "-m", "unifex.testing.dask_cluster", str(WORKERS), str(THREADS), *port],
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
            raise RuntimeError(f"the shared dask test cluster did not start within {START_TIMEOUT:g} s (it printed {line!r}); run `python -m unifex.testing.dask_cluster 2 5` to see why")
        if _planned_port is not None and line != f"tcp://127.0.0.1:{_planned_port}":
            proc.kill()
            proc.wait()
            raise RuntimeError(f"the shared dask test cluster started at {line}, not at the planned port {_planned_port}")
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
    return [("dask", {"address": _planned_address()})]


def _serve(workers: int, threads: int, port: int = 0) -> None:
    from unifex._backends.dask.cluster import local_cluster

    with local_cluster(workers, threads, True, silence_logs=logging.ERROR, scheduler_port=port) as cluster:
        print(cluster.scheduler_address, flush=True)
        sys.stdin.read()  # until the test session closes our stdin


if __name__ == "__main__":
    _serve(*(int(arg) for arg in sys.argv[1:4]))
