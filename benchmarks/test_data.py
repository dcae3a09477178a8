"""Data-heavy work on the ``process`` kind beside joblib (loky) and
``multiprocessing.Pool``, same group, same run (issue 11, point 6).

Targets (medians, side by side; ``unifex bench`` prints the same ratios):

* 8 tasks, each given a 64 MB numpy array (float64), returning its sum: unifex
  ``process`` <= 1.0x joblib's time and <= 0.1x ``multiprocessing.Pool``. As
  one ``map`` call (``test_args_unifex_map``, the like of joblib's one
  ``Parallel`` call and ``Pool.map``) the array is captured once; as 8
  ``submit`` calls (``test_args_unifex``) it is compared with its kept segment
  at each submit, so a task never sees bytes older than its submit;
* 8 tasks each returning a 64 MB array: <= 0.2x ``multiprocessing.Pool``;
* one 512 MB array shared with ``ex.share`` by 64 tasks: peak memory of the
  whole process tree (each process's PSS without shared memory, plus the
  segments once) <= 1.5x the array while the tasks run
  (``extra_info["peak_memory_ratio_tasks"]``; ``peak_memory_ratio`` covers the
  whole run, ``share()`` included, when the caller's array and its copy both
  exist: 2x by construction), time <= 2x a serial loop plus the pool's start-up
  (memory is measured in a separate, untimed run);
* the first result of ``map(task_50ms, range(1000))``: <= 3x one task's time
  (``extra_info["first_result_ratio"]``; ``Pool.imap`` with ``Pool.map``'s
  chunk of 125 takes 6.3 s, see BASELINES). The 100,000-item tiny ``map``
  beside ``Pool.map`` is in ``test_process.py``.

Every pool has 2 workers (forkserver), started before timing.
``UNIFEX_BENCH_QUICK=1`` makes the arrays 16x smaller.

    python3 -m pytest benchmarks/test_data.py --benchmark-only
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import unifex
from unifex.bench.workloads import env_quick

np = pytest.importorskip("numpy")
joblib = pytest.importorskip("joblib")

SIZE = 2
TASKS = 8
MB = 1 << 20
ARRAY_BYTES = (4 if env_quick() else 64) * MB
SHARED_BYTES = (32 if env_quick() else 512) * MB
SHARED_TASKS = 64
CTX = multiprocessing.get_context("forkserver")


def total(a: Any) -> float:
    return float(a.sum())


def make_array(nbytes: int) -> Any:
    return np.ones(nbytes, dtype=np.uint8)


def shared_total(handle: Any) -> float:
    return float(handle.value.sum())


def sleep_50ms(x: int) -> int:
    time.sleep(0.05)
    return x


def noop() -> None:
    return None


@pytest.fixture(scope="module")
def array() -> Any:
    # float64, whose sum runs at memory speed: the baseline (8 sums
    # serially in 39 ms) is such an array. A uint8 sum widens every element and
    # takes about 6x longer, and the compute would then hide what the transport costs.
    return np.ones(ARRAY_BYTES // 8, dtype=np.float64)


@pytest.fixture(scope="module")
def unifex_ex() -> Iterator[Any]:
    ex = unifex.executor("process", size=SIZE, start_method="forkserver")
    for f in [ex.submit(noop) for _ in range(4 * SIZE)]:
        f.result(timeout=60)
    yield ex
    ex.close()


@pytest.fixture(scope="module")
def mp_pool() -> Iterator[Any]:
    pool = CTX.Pool(SIZE)
    pool.map(abs, range(100))
    yield pool
    pool.close()
    pool.join()


@pytest.fixture(scope="module")
def parallel() -> Iterator[Any]:
    with joblib.Parallel(n_jobs=SIZE, backend="loky") as par:
        par(joblib.delayed(noop)() for _ in range(4 * SIZE))
        yield par


# -- 8 tasks x a 64 MB array as the argument ------------------------------------------

ARGS = f"data: {TASKS} tasks x a {ARRAY_BYTES // MB} MB array argument, returning its sum"


@pytest.mark.benchmark(group=ARGS)
def test_args_unifex(benchmark: Any, unifex_ex: Any, array: Any) -> None:
    out = benchmark.pedantic(lambda: [f.result() for f in [unifex_ex.submit(total, array) for _ in range(TASKS)]], rounds=5, warmup_rounds=1)
    assert out == [float(ARRAY_BYTES // 8)] * TASKS


@pytest.mark.benchmark(group=ARGS)
def test_args_unifex_map(benchmark: Any, unifex_ex: Any, array: Any) -> None:
    """The same work as one ``map`` call, like joblib's one ``Parallel`` call
    and ``Pool.map``: the array is captured (compared with its kept segment)
    once per call instead of once per submit."""
    out = benchmark.pedantic(lambda: list(unifex_ex.map(total, [array] * TASKS)), rounds=5, warmup_rounds=1)
    assert out == [float(ARRAY_BYTES // 8)] * TASKS


@pytest.mark.benchmark(group=ARGS)
def test_args_joblib(benchmark: Any, parallel: Any, array: Any) -> None:
    out = benchmark.pedantic(lambda: parallel(joblib.delayed(total)(array) for _ in range(TASKS)), rounds=5, warmup_rounds=1)
    assert out == [float(ARRAY_BYTES // 8)] * TASKS


@pytest.mark.benchmark(group=ARGS)
def test_args_Pool(benchmark: Any, mp_pool: Any, array: Any) -> None:
    out = benchmark.pedantic(lambda: mp_pool.map(total, [array] * TASKS, chunksize=1), rounds=3, warmup_rounds=1)
    assert out == [float(ARRAY_BYTES // 8)] * TASKS


@pytest.mark.benchmark(group=ARGS)
def test_args_serial(benchmark: Any, array: Any) -> None:
    benchmark.pedantic(lambda: [total(array) for _ in range(TASKS)], rounds=5)


# -- 8 tasks returning a 64 MB array --------------------------------------------------

RESULTS = f"data: {TASKS} tasks each returning a {ARRAY_BYTES // MB} MB array"


@pytest.mark.benchmark(group=RESULTS)
def test_results_unifex(benchmark: Any, unifex_ex: Any) -> None:
    out = benchmark.pedantic(lambda: [f.result().nbytes for f in [unifex_ex.submit(make_array, ARRAY_BYTES) for _ in range(TASKS)]], rounds=5, warmup_rounds=1)
    assert out == [ARRAY_BYTES] * TASKS


@pytest.mark.benchmark(group=RESULTS)
def test_results_joblib(benchmark: Any, parallel: Any) -> None:
    out = benchmark.pedantic(lambda: [a.nbytes for a in parallel(joblib.delayed(make_array)(ARRAY_BYTES) for _ in range(TASKS))], rounds=5, warmup_rounds=1)
    assert out == [ARRAY_BYTES] * TASKS


@pytest.mark.benchmark(group=RESULTS)
def test_results_Pool(benchmark: Any, mp_pool: Any) -> None:
    out = benchmark.pedantic(lambda: [a.nbytes for a in mp_pool.map(make_array, [ARRAY_BYTES] * TASKS, chunksize=1)], rounds=3, warmup_rounds=1)
    assert out == [ARRAY_BYTES] * TASKS


@pytest.mark.benchmark(group=RESULTS)
def test_results_serial(benchmark: Any) -> None:
    benchmark.pedantic(lambda: [make_array(ARRAY_BYTES).nbytes for _ in range(TASKS)], rounds=5)


# -- one 512 MB array shared by 64 tasks ----------------------------------------------


def _pss_kb(pid: int) -> int:
    """PSS of ``pid`` without its shared memory (``Pss - Pss_Shmem``), in kB."""
    pss = shmem = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith("Pss_Shmem:"):
                    shmem = int(line.split()[1])
    except OSError:
        pass
    return pss - shmem


def _segments_kb() -> int:
    """The memory of this process's unifex segments in /dev/shm, mapped or not."""
    total = 0
    for path in glob.glob(f"/dev/shm/uxd{os.getpid()}-*"):
        try:
            total += os.stat(path).st_blocks * 512
        except OSError:
            pass
    return total // 1024


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc)."""
    parents: dict[int, list[int]] = {}
    for path in glob.glob("/proc/[0-9]*/stat"):
        try:
            with open(path) as f:
                stat = f.read()
            ppid = int(stat[stat.rindex(")") + 2 :].split()[1])
        except (OSError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(path.split("/")[2]))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(parents.get(p, []))
    return out


class PeakMemory:
    """Samples the memory of this process tree on one thread: the peak since
    start, and the peak since :meth:`mark`. Each process counts its PSS without
    shared memory; the segments count once, by their size in /dev/shm. (A sum
    of PSS over processes counts a segment up to a third too much while a
    worker is mapping it, since the processes are read one after another as the
    pages' map counts change; and it misses a segment nobody maps.) Reading
    ``smaps_rollup`` of processes that map 512 MB costs tens of milliseconds of
    CPU per sample, so it runs in a round of its own, never a timed one."""

    def __init__(self, interval: float = 0.02) -> None:
        self.peak_kb = 0
        self.marked_peak_kb = 0
        self.at_peak: dict[int, int] = {}  # pid -> kB at the marked peak (0: the segments)
        self.roles: dict[int, str] = {}
        self._marked = False
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-pss", daemon=True)

    def sample(self) -> None:
        marked = self._marked  # a sample begun before mark() may have seen what came before
        by_pid = {p: _pss_kb(p) for p in _tree(os.getpid())}
        by_pid[0] = _segments_kb()
        kb = sum(by_pid.values())
        self.peak_kb = max(self.peak_kb, kb)
        if marked and kb > self.marked_peak_kb:
            self.marked_peak_kb = kb
            self.at_peak = by_pid
            self.roles = {pid: _cmd(pid) for pid in by_pid}

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.sample()

    def mark(self) -> None:
        self._marked = True

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)
        self.sample()


def _cmd(pid: int) -> str:
    if pid == 0:
        return "segments"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            words = f.read().split(b"\0")
    except OSError:
        return "gone"
    text = b" ".join(words).decode(errors="replace")
    for marker, role in (("forkserver", "worker or forkserver"), ("resource_tracker", "resource_tracker"), ("spawn_main", "worker")):
        if marker in text:
            return role
    return "parent" if pid == os.getpid() else "other"


SHARE = f"data: one {SHARED_BYTES // MB} MB array shared by {SHARED_TASKS} tasks"


def _share_run(peak: PeakMemory | None = None) -> list[float]:
    ex: Any
    with unifex.executor("process", size=SIZE, start_method="forkserver") as ex:
        handle = ex.share(np.ones(SHARED_BYTES, dtype=np.uint8))
        if peak is not None:
            peak.mark()  # from the moment share() has returned
        out = [f.result() for f in [ex.submit(shared_total, handle) for _ in range(SHARED_TASKS)]]
        del handle
    return out


@pytest.mark.timeout(900)
@pytest.mark.benchmark(group=SHARE)
def test_share_unifex(benchmark: Any) -> None:
    """From a new executor to the last result: pool start-up, ``share`` and the
    tasks. The array is made in the parent and dropped once shared (the handle's
    value is the parent's copy too), as a memory-minded user would do. Memory is
    measured in a run of its own before the timed rounds, which run unobserved
    like the serial loop they are compared with."""
    baseline = {p: _pss_kb(p) for p in _tree(os.getpid())}
    baseline[0] = _segments_kb()
    with PeakMemory() as peak:
        assert _share_run(peak) == [float(SHARED_BYTES)] * SHARED_TASKS
    out = benchmark.pedantic(_share_run, rounds=2)
    assert out == [float(SHARED_BYTES)] * SHARED_TASKS
    base_kb = sum(baseline.values())
    # the whole run includes share() itself, when the caller's array and the
    # segment it is copied into both exist (2x by construction); while the
    # tasks run, only the segment
    benchmark.extra_info["peak_memory_ratio"] = round((peak.peak_kb - base_kb) * 1024 / SHARED_BYTES, 2)
    benchmark.extra_info["peak_memory_ratio_tasks"] = round((peak.marked_peak_kb - base_kb) * 1024 / SHARED_BYTES, 2)
    by_role: dict[str, int] = {}
    for pid, kb in peak.at_peak.items():
        role = peak.roles[pid]
        by_role[role] = by_role.get(role, 0) + (kb - baseline.get(pid, 0)) // 1024
    benchmark.extra_info["peak_tasks_mb_by_process"] = by_role


@pytest.mark.timeout(900)
@pytest.mark.benchmark(group=SHARE)
def test_share_serial_plus_startup(benchmark: Any) -> None:
    """The reference: a serial loop over the array plus a pool's start-up (a
    new executor's first no-op result)."""
    arr = np.ones(SHARED_BYTES, dtype=np.uint8)

    def run() -> list[float]:
        with unifex.executor("process", size=SIZE, start_method="forkserver") as ex:
            ex.submit(noop).result()
        return [total(arr) for _ in range(SHARED_TASKS)]

    out = benchmark.pedantic(run, rounds=2)
    assert out == [float(SHARED_BYTES)] * SHARED_TASKS


# -- first result of a lazy map -------------------------------------------------------

FIRST = "data: first result of map(task_50ms, range(1000))"


@pytest.mark.benchmark(group=FIRST)
def test_first_result_unifex(benchmark: Any, unifex_ex: Any) -> None:
    def first() -> int:
        it = unifex_ex.map(sleep_50ms, range(1000))
        try:
            return int(next(it))
        finally:
            it.close()

    def settle() -> None:  # the batches still running from the last round end first
        for f in [unifex_ex.submit(noop) for _ in range(2 * SIZE)]:
            f.result(timeout=60)

    assert benchmark.pedantic(first, setup=settle, rounds=5) == 0
    benchmark.extra_info["first_result_ratio"] = round(benchmark.stats.stats.median / 0.05, 2)


@pytest.mark.benchmark(group=FIRST)
def test_first_result_one_task(benchmark: Any) -> None:
    benchmark.pedantic(lambda: sleep_50ms(0), rounds=5)
