"""Data-heavy work on the ``process`` kind beside joblib (loky) and
``multiprocessing.Pool``, same group, same run (issue 11, point 6).

Targets (medians, side by side; ``unifex bench`` prints the same ratios):

* 8 tasks, each given a 64 MB numpy array, returning its sum: unifex
  ``process`` <= 1.0x joblib's time and <= 0.1x ``multiprocessing.Pool``;
* 8 tasks each returning a 64 MB array: <= 0.2x ``multiprocessing.Pool``;
* one 512 MB array shared with ``ex.share`` by 64 tasks: peak memory (PSS)
  of the whole process tree <= 1.5x the array, time <= 2x a serial loop plus
  the pool's start-up (``extra_info``: ``peak_memory_ratio`` over the whole
  run, ``share()`` included, and ``peak_memory_ratio_tasks`` once it returned);
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
    return np.ones(ARRAY_BYTES, dtype=np.uint8)


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
    assert out == [float(ARRAY_BYTES)] * TASKS


@pytest.mark.benchmark(group=ARGS)
def test_args_joblib(benchmark: Any, parallel: Any, array: Any) -> None:
    out = benchmark.pedantic(lambda: parallel(joblib.delayed(total)(array) for _ in range(TASKS)), rounds=5, warmup_rounds=1)
    assert out == [float(ARRAY_BYTES)] * TASKS


@pytest.mark.benchmark(group=ARGS)
def test_args_Pool(benchmark: Any, mp_pool: Any, array: Any) -> None:
    out = benchmark.pedantic(lambda: mp_pool.map(total, [array] * TASKS, chunksize=1), rounds=3, warmup_rounds=1)
    assert out == [float(ARRAY_BYTES)] * TASKS


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
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


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
    """Samples the PSS of this process tree (shared pages counted once) on a thread."""

    def __init__(self) -> None:
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-pss", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.02):
            self.peak_kb = max(self.peak_kb, sum(_pss_kb(p) for p in _tree(os.getpid())))

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)


SHARE = f"data: one {SHARED_BYTES // MB} MB array shared by {SHARED_TASKS} tasks"


@pytest.mark.timeout(900)
@pytest.mark.benchmark(group=SHARE)
def test_share_unifex(benchmark: Any) -> None:
    """From a new executor to the last result: pool start-up, ``share`` and the
    tasks. The array is made in the parent and dropped once shared (the handle's
    value is the parent's copy too), as a memory-minded user would do."""
    peaks: list[int] = []
    baseline_kb = sum(_pss_kb(p) for p in _tree(os.getpid()))

    task_peaks: list[int] = []

    def run() -> list[float]:
        ex: Any
        with PeakMemory() as peak, unifex.executor("process", size=SIZE, start_method="forkserver") as ex:
            handle = ex.share(np.ones(SHARED_BYTES, dtype=np.uint8))
            with PeakMemory() as tasks_peak:  # from the moment share() has returned
                out = [f.result() for f in [ex.submit(shared_total, handle) for _ in range(SHARED_TASKS)]]
            del handle
        peaks.append(peak.peak_kb - baseline_kb)
        task_peaks.append(tasks_peak.peak_kb - baseline_kb)
        return out

    out = benchmark.pedantic(run, rounds=2)
    assert out == [float(SHARED_BYTES)] * SHARED_TASKS
    # the whole run includes share() itself, when the caller's array and the
    # segment it is copied into both exist; while the tasks run, only the segment
    benchmark.extra_info["peak_memory_ratio"] = round(max(peaks) * 1024 / SHARED_BYTES, 2)
    benchmark.extra_info["peak_memory_ratio_tasks"] = round(max(task_peaks) * 1024 / SHARED_BYTES, 2)


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
