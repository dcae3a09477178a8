"""The workloads of ``unifex bench``: the task functions every kind runs, how
much work one round does (``Params``), and the rows of the table (``Workload``).

The task functions live at module level so every kind can ship them to its
workers; nothing here imports an optional library at import time.
"""

from __future__ import annotations

import importlib.util
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import unifex

__all__ = [
    "TIMES",
    "WORKLOADS",
    "WORKLOAD_NAMES",
    "Params",
    "Workload",
    "array_sum",
    "available_workloads",
    "large_arrays",
    "release_large_arrays",
    "dict_ops",
    "env_quick",
    "lock_ops",
    "noop",
    "noop_arg",
    "params_for",
    "queue_ops",
    "spin",
    "square",
    "square_chunk",
    "by_name",
]

perf = time.perf_counter
#: the multiplication sign of the table's ratios (an escape keeps the source ASCII)
TIMES = "\u00d7"


# -- task functions (module level, so every kind can ship them to its workers) ----


def noop() -> None:
    """The tiny task of the overhead workload."""


def noop_arg(_: object) -> None:
    """``noop`` taking the argument a ``map`` passes."""


def square(x: int) -> int:
    """The tiny task of the map workload."""
    return x * x


def square_chunk(xs: list[int]) -> list[int]:
    """A batch of ``square`` calls: how a hand-written dask program maps cheap work."""
    return [x * x for x in xs]


def unifex_sleep(seconds: float) -> None:
    """The I/O-bound task: sleeps the way the kind running it wants."""
    unifex.sleep(seconds)


def time_sleep(seconds: float) -> None:
    """The I/O-bound task of the raw thread, process and dask baselines."""
    time.sleep(seconds)


def spin(n: int) -> int:
    """The CPU-bound task: a pure-Python loop holding the GIL throughout."""
    total = 0
    for i in range(n):
        total += i * i
    return total


def lock_ops(lock: Any, n: int) -> float:
    """``n`` acquire+release pairs; returns the seconds they took inside the task."""
    acquire, release = lock.acquire, lock.release
    start = perf()
    for _ in range(n):
        acquire()
        release()
    return perf() - start


def queue_ops(q: Any, n: int) -> float:
    """``n`` put+get pairs; returns the seconds they took inside the task."""
    put, get = q.put, q.get
    start = perf()
    for i in range(n):
        put(i)
        get()
    return perf() - start


def dict_ops(d: Any, n: int) -> float:
    """``n`` set+get pairs on one key; returns the seconds they took inside the task."""
    start = perf()
    for i in range(n):
        d["key"] = i
        d["key"]  # the read is the measured operation
    return perf() - start


def distributed_module() -> Any:
    """``distributed``, imported only by the dask family (an optional dependency)."""
    import distributed

    return distributed


def dask_lock_ops(name: str, n: int) -> float:
    """``lock_ops`` on a ``distributed.Lock``, made inside the dask task."""
    return lock_ops(distributed_module().Lock(name), n)


def dask_queue_ops(name: str, n: int) -> float:
    """``queue_ops`` on a ``distributed.Queue``, made inside the dask task."""
    return queue_ops(distributed_module().Queue(name), n)


def dask_dict_ops(name: str, n: int) -> float:
    """set+get on a ``distributed.Variable`` (dask has no shared dict)."""
    var = distributed_module().Variable(name)
    start = perf()
    for i in range(n):
        var.set(i)
        var.get()
    return perf() - start


def array_sum(a: Any) -> float:
    """The task of the large-array workload: all the work is receiving ``a``."""
    return float(a.sum())


#: (tasks, MB) -> the arrays of the large-array workload, made once per run
_ARRAYS: dict[tuple[int, int], list[Any]] = {}


def large_arrays(p: Params) -> list[Any]:
    """``p.large_tasks`` distinct float64 arrays of ``p.large_mb`` MB each, made
    on first use and kept until ``release_large_arrays`` (so no round pays for
    making them). Needs numpy: callers check ``Workload.missing`` first."""
    key = (p.large_tasks, p.large_mb)
    arrays = _ARRAYS.get(key)
    if arrays is None:
        import numpy

        n = p.large_mb * 2**20 // 8
        arrays = _ARRAYS[key] = [numpy.full(n, float(i + 1)) for i in range(p.large_tasks)]
    return arrays


def release_large_arrays() -> None:
    """Drop the arrays of the large-array workload (hundreds of MB in a full run)."""
    _ARRAYS.clear()


# -- workloads and their sizes ----------------------------------------------------


@dataclass(frozen=True)
class Params:
    """How much work one round of each workload does, and how many rounds."""

    overhead_tasks: int
    map_tasks: int
    io_tasks: int
    io_sleep: float
    cpu_tasks: int
    cpu_loop: int
    ops: int
    large_tasks: int
    large_mb: int
    rounds: int
    map_rounds: int
    large_rounds: int
    #: seconds any single wait may take before the cell is marked as failed
    limit: float


#: per-unit cost of a family: scales the counts of the per-task and per-op workloads
_COST_SCALE = {"light": 1.0, "process": 0.15, "dask": 0.01}


def params_for(cost: str, quick: bool) -> Params:
    """Workload sizes for a family of ``cost`` ("light", "process", "dask").

    The map, I/O and CPU workloads do the same work for every kind so their row
    compares kinds directly; the per-task and per-op workloads run fewer
    repetitions where each costs more (their cells are per task or per op).
    """
    scale = _COST_SCALE[cost]
    if quick:
        return Params(
            overhead_tasks=max(5, int(100 * scale)),
            map_tasks=2_000,
            io_tasks=20,
            io_sleep=0.002,
            cpu_tasks=4,
            cpu_loop=10_000,
            ops=max(5, int(500 * scale)),
            large_tasks=8,
            large_mb=8,
            rounds=1,
            map_rounds=1,
            large_rounds=1,
            limit=30.0,
        )
    return Params(
        overhead_tasks=max(20, int(2_000 * scale)),
        map_tasks=100_000,
        io_tasks=100,
        io_sleep=0.005,
        cpu_tasks=8,
        cpu_loop=100_000,
        ops=max(20, int(5_000 * scale)),
        large_tasks=8,
        large_mb=64,
        rounds=5,
        # a raw dask map round takes seconds (dask serialises list results item by item)
        map_rounds=2 if cost == "dask" else 3,
        # a round ships 512 MB: seconds for some process pools
        large_rounds=3,
        limit=60.0,
    )


def env_quick() -> bool:
    """``UNIFEX_BENCH_QUICK=1``: the pytest-benchmark suite uses the small
    counts of ``unifex bench --quick``."""
    return os.environ.get("UNIFEX_BENCH_QUICK", "") not in ("", "0")


@dataclass(frozen=True)
class Workload:
    """One row of the table."""

    name: str
    #: "per_task": seconds / tasks; "rate": tasks / seconds; "wall": seconds; "per_op": seconds / ops
    metric: str
    unit: str
    describe: Callable[[Params], str]
    #: the field of ``Params`` that says how many rounds to take
    rounds_field: str = "rounds"
    #: an optional module the workload needs; without it the workload is skipped
    needs: str | None = None

    def missing(self) -> str | None:
        """Why this workload cannot run here (its module is not installed), or None."""
        if self.needs is None or importlib.util.find_spec(self.needs) is not None:
            return None
        return f"{self.needs} is not installed (pip install {self.needs})"

    def count(self, p: Params) -> int:
        if self.metric == "per_task":
            return p.overhead_tasks
        if self.metric == "rate":
            return p.map_tasks
        if self.metric == "per_op":
            return p.ops
        return 1

    def rounds(self, p: Params) -> int:
        return int(getattr(p, self.rounds_field))

    def value(self, seconds: float, p: Params) -> float:
        """One round's seconds in this workload's display unit."""
        n = self.count(p)
        if self.metric == "rate":
            return n / seconds
        if self.metric == "wall":
            return seconds * 1e3
        return seconds / n * 1e6

    @property
    def higher_is_better(self) -> bool:
        return self.metric == "rate"


WORKLOADS: tuple[Workload, ...] = (
    Workload("overhead", "per_task", "µs/task", lambda p: "tiny task, submit → result one at a time"),
    Workload("map", "rate", "tasks/s", lambda p: f"map of {p.map_tasks:,} tiny tasks", rounds_field="map_rounds"),
    Workload("io", "wall", "ms", lambda p: f"I/O fan-out: {p.io_tasks} tasks {TIMES} {p.io_sleep * 1e3:g} ms sleep"),
    Workload("cpu", "wall", "ms", lambda p: f"CPU: {p.cpu_tasks} tasks {TIMES} {p.cpu_loop:,}-step Python loop"),
    Workload(
        "large",
        "wall",
        "ms",
        lambda p: f"large arguments: {p.large_tasks} tasks, each sums its own {p.large_mb} MB numpy array",
        rounds_field="large_rounds",
        needs="numpy",
    ),
    Workload("lock", "per_op", "µs/op", lambda p: "lock acquire+release inside a task"),
    Workload("queue", "per_op", "µs/op", lambda p: "queue put+get inside a task"),
    Workload("dict", "per_op", "µs/op", lambda p: "dict set+get inside a task"),
)
WORKLOAD_NAMES = tuple(w.name for w in WORKLOADS)
_WORKLOAD = {w.name: w for w in WORKLOADS}


def by_name(name: str) -> Workload:
    """The workload called ``name``."""
    return _WORKLOAD[name]


def available_workloads() -> tuple[tuple[Workload, ...], dict[str, str]]:
    """The workloads that can run here, and why each other one cannot."""
    skipped = {w.name: why for w in WORKLOADS if (why := w.missing()) is not None}
    return tuple(w for w in WORKLOADS if w.name not in skipped), skipped

