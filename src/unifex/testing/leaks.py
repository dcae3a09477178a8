"""Leak checks: threads, child processes and POSIX semaphores a test leaves
behind. Process-wide helpers that outlive any one executor by design (the
multiprocessing forkserver and resource tracker) are not counted."""

from __future__ import annotations

import glob
import os
import re
import threading
import time

__all__ = ["Snapshot", "leaked"]

#: threads owned by libraries for the whole process, not by an executor
IGNORED_THREADS = re.compile(r"^(pydevd|ThreadPoolExecutor-\d+_\d+$|asyncio_\d+|Dummy-|Profile|IO loop|TCP-Executor|Dask-Offload|AsyncProcess .* watch)")
IGNORED_PROCESS_WORDS = ("forkserver", "resource_tracker")


def _children() -> dict[int, str]:
    """pid -> 'state cmdline' for every child of this process (Linux /proc)."""
    me = os.getpid()
    found: dict[int, str] = {}
    for stat_path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(stat_path) as f:
                stat = f.read()
            rest = stat[stat.rindex(")") + 2 :].split()
            state, ppid = rest[0], int(rest[1])
            if ppid != me:
                continue
            pid = int(stat_path.split("/")[2])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except (OSError, ValueError):
            continue
        if any(word in cmd for word in IGNORED_PROCESS_WORDS):
            continue
        found[pid] = f"{state} {cmd[:120]}"
    return found


def _semaphores() -> set[str]:
    """POSIX semaphores and shared-memory segments (both live in /dev/shm)."""
    return set(glob.glob("/dev/shm/*"))


def _ours(names: set[str]) -> set[str]:
    """The semaphores among ``names`` that belong to this test run: named after
    this process (unifex names its own ``sem.ux<pid>-...``) or still mapped by
    this process or one of its children (shared-memory segments likewise,
    ``uxq<pid>-...``, and the data segments ``uxd<pid>-...``). /dev/shm is machine-wide, so files
    made by unrelated programs running at the same time are not counted."""
    if not names:
        return set()
    me = os.getpid()
    ours = {n for n in names if os.path.basename(n).startswith((f"sem.ux{me}-", f"uxq{me}-", f"uxd{me}-"))}
    for pid in [me, *_children()]:
        try:
            with open(f"/proc/{pid}/maps") as f:
                mapped = f.read()
        except OSError:
            continue
        ours |= {n for n in names if n in mapped}
    return ours


class Snapshot:
    def __init__(self) -> None:
        self.threads = {t.ident for t in threading.enumerate()}
        self.children = set(_children())
        self.semaphores = _semaphores()

    def new_threads(self) -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.ident not in self.threads and t.is_alive() and not IGNORED_THREADS.match(t.name)]

    def new_children(self) -> dict[int, str]:
        return {pid: desc for pid, desc in _children().items() if pid not in self.children}

    def new_semaphores(self) -> set[str]:
        return _ours(_semaphores() - self.semaphores)


def leaked(before: Snapshot, grace: float = 10.0) -> list[str]:
    """What appeared since ``before`` and is still there after ``grace``
    seconds (things that are shutting down get time to finish)."""
    end = time.monotonic() + grace
    while True:
        threads = before.new_threads()
        children = before.new_children()
        semaphores = before.new_semaphores()
        if not (threads or children or semaphores) or time.monotonic() > end:
            break
        time.sleep(0.02)
    problems = [f"thread {t.name!r} still running" for t in threads]
    problems += [f"child process {pid} ({desc}) still there" for pid, desc in children.items()]
    problems += [f"semaphore or shared memory {name} not unlinked" for name in sorted(semaphores)]
    return problems
