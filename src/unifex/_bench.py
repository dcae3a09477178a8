"""The measurements behind ``unifex bench``: the workloads that decide which kind
to use, run for every usable kind beside the raw library that kind wraps.

Used by the ``unifex bench`` command (:mod:`unifex.__main__`) and by the
pytest-benchmark suite in ``benchmarks/``. The data flow of one run::

    kinds --group by raw library--> families (threads, process, gevent, dask, ...)
    family: start its executors and raw pools -> warm up -> for each workload,
            rounds interleaved across subjects -> close
    cells (seconds per round) -> medians, ratios -> table | JSON | bar chart

Every unifex kind runs the same code (that is the point of unifex); each raw
library runs its own idiom. A ratio is unifex time / raw library time for the
same work measured side by side in the same run: below 1.00 unifex is faster.
The optional libraries (gevent, distributed, matplotlib) are imported only when
the family or the chart that needs them is asked for.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import gc
import logging
import math
import os
import platform
import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import unifex

__all__ = [
    "FAMILIES",
    "RAW",
    "RAW_CLASSES",
    "WORKLOADS",
    "Params",
    "Report",
    "RawSubject",
    "Subject",
    "UnifexSubject",
    "Workload",
    "family_of",
    "machine_info",
    "open_family",
    "params_for",
    "raw_supports",
    "run",
]

_perf = time.perf_counter
#: the multiplication sign of the table's ratios (an escape keeps the source ASCII)
TIMES = "\u00d7"


# -- task functions (module level, so every kind can ship them to its workers) ----


def noop() -> None:
    """The tiny task of the overhead workload."""


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
    start = _perf()
    for _ in range(n):
        acquire()
        release()
    return _perf() - start


def queue_ops(q: Any, n: int) -> float:
    """``n`` put+get pairs; returns the seconds they took inside the task."""
    put, get = q.put, q.get
    start = _perf()
    for i in range(n):
        put(i)
        get()
    return _perf() - start


def dict_ops(d: Any, n: int) -> float:
    """``n`` set+get pairs on one key; returns the seconds they took inside the task."""
    start = _perf()
    for i in range(n):
        d["key"] = i
        d["key"]  # the read is the measured operation
    return _perf() - start


def _distributed() -> Any:
    """``distributed``, imported only by the dask family (an optional dependency)."""
    import distributed

    return distributed


def dask_lock_ops(name: str, n: int) -> float:
    """``lock_ops`` on a ``distributed.Lock``, made inside the dask task."""
    return lock_ops(_distributed().Lock(name), n)


def dask_queue_ops(name: str, n: int) -> float:
    """``queue_ops`` on a ``distributed.Queue``, made inside the dask task."""
    return queue_ops(_distributed().Queue(name), n)


def dask_dict_ops(name: str, n: int) -> float:
    """set+get on a ``distributed.Variable`` (dask has no shared dict)."""
    var = _distributed().Variable(name)
    start = _perf()
    for i in range(n):
        var.set(i)
        var.get()
    return _perf() - start


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
    rounds: int
    map_rounds: int
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
            rounds=1,
            map_rounds=1,
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
        rounds=5,
        # a raw dask map round takes seconds (dask serialises list results item by item)
        map_rounds=2 if cost == "dask" else 3,
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

    def count(self, p: Params) -> int:
        if self.metric == "per_task":
            return p.overhead_tasks
        if self.metric == "rate":
            return p.map_tasks
        if self.metric == "per_op":
            return p.ops
        return 1

    def rounds(self, p: Params) -> int:
        return p.map_rounds if self.metric == "rate" else p.rounds

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
    Workload("map", "rate", "tasks/s", lambda p: f"map of {p.map_tasks:,} tiny tasks"),
    Workload("io", "wall", "ms", lambda p: f"I/O fan-out: {p.io_tasks} tasks {TIMES} {p.io_sleep * 1e3:g} ms sleep"),
    Workload("cpu", "wall", "ms", lambda p: f"CPU: {p.cpu_tasks} tasks {TIMES} {p.cpu_loop:,}-step Python loop"),
    Workload("lock", "per_op", "µs/op", lambda p: "lock acquire+release inside a task"),
    Workload("queue", "per_op", "µs/op", lambda p: "queue put+get inside a task"),
    Workload("dict", "per_op", "µs/op", lambda p: "dict set+get inside a task"),
)
WORKLOAD_NAMES = tuple(w.name for w in WORKLOADS)
_WORKLOAD = {w.name: w for w in WORKLOADS}


# -- what gets measured: a unifex executor or a raw library -----------------------


class Subject:
    """Something that runs rounds of workloads: a unifex kind or a raw library."""

    name: str = "?"
    size: int = 0
    supported: frozenset[str] = frozenset(WORKLOAD_NAMES)

    def warm_up(self, p: Params) -> None:
        """Start every worker before anything is timed."""

    def measure(self, workload: str, p: Params) -> float:
        """Seconds one round of ``workload`` takes."""
        method: Callable[[Params], float] = getattr(self, "_" + workload)
        return method(p)

    def close(self, broken: bool) -> None:
        """Release the workers; ``broken``: a round hung, do not wait for it."""


class ExecutorRounds:
    """The rounds that only need ``submit`` and ``map``: shared by unifex
    executors and the ``concurrent.futures`` executors they are compared with."""

    target: Any  # the executor driven
    sleep: Callable[[float], Any]  # how a task sleeps in the I/O round

    def _overhead(self, p: Params) -> float:
        submit, limit = self.target.submit, p.limit
        start = _perf()
        for _ in range(p.overhead_tasks):
            submit(noop).result(limit)
        return _perf() - start

    def _map(self, p: Params) -> float:
        start = _perf()
        deque(self.target.map(square, range(p.map_tasks), timeout=p.limit), maxlen=0)
        return _perf() - start

    def _fan_out(self, fn: Callable[[Any], Any], arg: Any, n: int, limit: float) -> float:
        submit = self.target.submit
        start = _perf()
        futs = [submit(fn, arg) for _ in range(n)]
        for f in futs:
            f.result(limit)
        return _perf() - start

    def _io(self, p: Params) -> float:
        return self._fan_out(type(self).sleep, p.io_sleep, p.io_tasks, p.limit)

    def _cpu(self, p: Params) -> float:
        return self._fan_out(spin, p.cpu_loop, p.cpu_tasks, p.limit)


class UnifexSubject(ExecutorRounds, Subject):
    """A unifex executor: one code path for every kind."""

    sleep = staticmethod(unifex_sleep)

    def __init__(self, kind: str, ex: Any) -> None:
        self.name = kind
        self.ex = self.target = ex
        self.size = int(ex.size)
        self._helpers: dict[str, Any] = {}

    def warm_up(self, p: Params) -> None:
        futs = [self.ex.submit(noop) for _ in range(min(2 * self.size, 200))]
        for f in futs:
            f.result(p.limit)
        deque(self.ex.map(square, range(4 * self.size), timeout=p.limit), maxlen=0)

    def _helper(self, name: str) -> Any:
        helper = self._helpers.get(name)
        if helper is None:
            helper = self._helpers[name] = getattr(self.ex, name)()
        return helper

    def _lock(self, p: Params) -> float:
        return float(self.ex.submit(lock_ops, self._helper("Lock"), p.ops).result(p.limit))

    def _queue(self, p: Params) -> float:
        return float(self.ex.submit(queue_ops, self._helper("Queue"), p.ops).result(p.limit))

    def _dict(self, p: Params) -> float:
        return float(self.ex.submit(dict_ops, self._helper("dict"), p.ops).result(p.limit))

    def close(self, broken: bool) -> None:
        self._helpers.clear()
        if broken:
            self.ex.terminate()
        self.ex.close(wait=not broken)


class RawSubject(Subject):
    """A raw library, driven the way a user of that library would drive it;
    made with ``(size, client)`` where ``client`` is the dask family's client."""

    #: short label for table cells
    label: str = "?"

    def __init__(self, size: int, client: Any = None) -> None:
        self.size = size


class ThreadPoolSubject(ExecutorRounds, RawSubject):
    name = "ThreadPoolExecutor"
    label = "TPE"
    pool: concurrent.futures.Executor
    sleep = staticmethod(time_sleep)

    def __init__(self, size: int, client: Any = None) -> None:
        self.size = size
        self.pool = self.target = concurrent.futures.ThreadPoolExecutor(max_workers=size, thread_name_prefix="unifex-bench-tpe")

    def warm_up(self, p: Params) -> None:
        futs = [self.pool.submit(noop) for _ in range(2 * self.size)]
        for f in futs:
            f.result(p.limit)

    def _lock(self, p: Params) -> float:
        return float(self.pool.submit(lock_ops, threading.Lock(), p.ops).result(p.limit))

    def _queue(self, p: Params) -> float:
        return float(self.pool.submit(queue_ops, queue.Queue(), p.ops).result(p.limit))

    def _dict(self, p: Params) -> float:
        return float(self.pool.submit(dict_ops, {}, p.ops).result(p.limit))

    def close(self, broken: bool) -> None:
        self.pool.shutdown(wait=not broken, cancel_futures=broken)


def process_context() -> Any:
    """The start method unifex's ``process`` kind uses by default."""
    import multiprocessing

    method = "forkserver" if "forkserver" in multiprocessing.get_all_start_methods() else "spawn"
    return multiprocessing.get_context(method)


def mp_default_chunksize(n: int, size: int) -> int:
    """``multiprocessing.Pool.map``'s own rule: about four chunks per worker."""
    return max(1, math.ceil(n / (4 * size)))


class ProcessPoolSubject(ThreadPoolSubject):
    """``ProcessPoolExecutor``; its map gets multiprocessing's chunk size (the
    default ``chunksize=1`` would take minutes for 100,000 tasks) and its shared
    state is a ``multiprocessing.Manager``, what its users reach for."""

    name = "ProcessPoolExecutor"
    label = "PPE"

    def __init__(self, size: int, client: Any = None) -> None:
        self.size = size
        self.ctx = process_context()
        self.pool = self.target = concurrent.futures.ProcessPoolExecutor(max_workers=size, mp_context=self.ctx)
        self._manager: Any = None
        self._proxies: dict[str, Any] = {}

    def _map(self, p: Params) -> float:
        chunksize = mp_default_chunksize(p.map_tasks, self.size)
        start = _perf()
        deque(self.pool.map(square, range(p.map_tasks), timeout=p.limit, chunksize=chunksize), maxlen=0)
        return _perf() - start

    def _proxy(self, name: str) -> Any:
        if self._manager is None:
            self._manager = self.ctx.Manager()
        proxy = self._proxies.get(name)
        if proxy is None:
            proxy = self._proxies[name] = getattr(self._manager, name)()
        return proxy

    def _lock(self, p: Params) -> float:
        return float(self.pool.submit(lock_ops, self._proxy("Lock"), p.ops).result(p.limit))

    def _queue(self, p: Params) -> float:
        return float(self.pool.submit(queue_ops, self._proxy("Queue"), p.ops).result(p.limit))

    def _dict(self, p: Params) -> float:
        return float(self.pool.submit(dict_ops, self._proxy("dict"), p.ops).result(p.limit))

    def close(self, broken: bool) -> None:
        self._proxies.clear()
        try:
            super().close(broken)
        finally:
            if self._manager is not None:
                self._manager.shutdown()


class MultiprocessingPoolSubject(RawSubject):
    """``multiprocessing.Pool``: ``apply_async`` and ``map`` with its default chunking."""

    name = "multiprocessing.Pool"
    label = "mp.Pool"
    supported = frozenset({"overhead", "map"})

    def __init__(self, size: int, client: Any = None) -> None:
        self.size = size
        self.pool = process_context().Pool(size)

    def warm_up(self, p: Params) -> None:
        self.pool.map_async(square, range(4 * self.size), chunksize=1).get(p.limit)

    def _overhead(self, p: Params) -> float:
        apply_async, limit = self.pool.apply_async, p.limit
        start = _perf()
        for _ in range(p.overhead_tasks):
            apply_async(noop).get(limit)
        return _perf() - start

    def _map(self, p: Params) -> float:
        start = _perf()
        self.pool.map_async(square, range(p.map_tasks)).get(p.limit)
        return _perf() - start

    def close(self, broken: bool) -> None:
        if broken:
            self.pool.terminate()
        else:
            self.pool.close()
        self.pool.join()


class GeventPoolSubject(RawSubject):
    """``gevent.pool.Pool`` in the calling thread's hub."""

    name = "gevent.pool.Pool"
    label = "gevent.Pool"

    def __init__(self, size: int, client: Any = None) -> None:
        import gevent.pool

        self.size = size
        self.pool = gevent.pool.Pool(size)

    def _timeout(self, p: Params) -> Any:
        import gevent

        return gevent.Timeout(p.limit, TimeoutError(f"gevent.pool.Pool did not finish a round within {p.limit} s"))

    def warm_up(self, p: Params) -> None:
        with self._timeout(p):
            self.pool.map(noop_arg, range(2 * self.size))

    def _overhead(self, p: Params) -> float:
        spawn = self.pool.spawn
        with self._timeout(p):
            start = _perf()
            for _ in range(p.overhead_tasks):
                spawn(noop).get()
            return _perf() - start

    def _map(self, p: Params) -> float:
        with self._timeout(p):
            start = _perf()
            self.pool.map(square, range(p.map_tasks))
            return _perf() - start

    def _fan_out(self, fn: Callable[[Any], Any], arg: Any, n: int, p: Params) -> float:
        spawn = self.pool.spawn
        with self._timeout(p):
            start = _perf()
            greenlets = [spawn(fn, arg) for _ in range(n)]
            for g in greenlets:
                g.get()
            return _perf() - start

    def _io(self, p: Params) -> float:
        import gevent

        return self._fan_out(gevent.sleep, p.io_sleep, p.io_tasks, p)

    def _cpu(self, p: Params) -> float:
        return self._fan_out(spin, p.cpu_loop, p.cpu_tasks, p)

    def _one(self, fn: Callable[..., float], *args: Any, p: Params) -> float:
        with self._timeout(p):
            return float(self.pool.spawn(fn, *args).get())

    def _lock(self, p: Params) -> float:
        import gevent.lock

        return self._one(lock_ops, gevent.lock.Semaphore(), p.ops, p=p)

    def _queue(self, p: Params) -> float:
        import gevent.queue

        return self._one(queue_ops, gevent.queue.Queue(), p.ops, p=p)

    def _dict(self, p: Params) -> float:
        return self._one(dict_ops, {}, p.ops, p=p)

    def close(self, broken: bool) -> None:
        if broken:
            self.pool.kill(block=False)
        else:
            self.pool.join(timeout=30)


def noop_arg(_: object) -> None:
    """``noop`` taking the argument a ``map`` passes."""


class DaskClientSubject(RawSubject):
    """``client.submit`` / ``client.map`` on the cluster the unifex ``dask`` kind
    uses; map sends chunks (as a dask user batching cheap work would, with
    multiprocessing's chunk-size rule), shared state uses dask's own ``Lock``,
    ``Queue`` and ``Variable``."""

    name = "dask client"
    label = "client"

    def __init__(self, size: int, client: Any = None) -> None:
        if client is None:
            raise RuntimeError("no dask client: the LocalCluster for the raw dask baseline did not start")
        self.client = client
        self.size = size
        self._seq = 0

    def _wait(self, futs: list[Any], p: Params) -> list[Any]:
        _distributed().wait(futs, timeout=p.limit)
        return list(self.client.gather(futs))  # one batch; raises the first task error

    def warm_up(self, p: Params) -> None:
        self._wait(self.client.map(noop_arg, range(2 * self.size), pure=False), p)

    def _overhead(self, p: Params) -> float:
        submit, limit = self.client.submit, p.limit
        start = _perf()
        for _ in range(p.overhead_tasks):
            submit(noop, pure=False).result(limit)
        return _perf() - start

    def _map(self, p: Params) -> float:
        n = p.map_tasks
        step = mp_default_chunksize(n, self.size)
        start = _perf()
        chunks = [list(range(i, min(i + step, n))) for i in range(0, n, step)]
        self._wait(self.client.map(square_chunk, chunks, pure=False), p)
        return _perf() - start

    def _io(self, p: Params) -> float:
        start = _perf()
        self._wait(self.client.map(time_sleep, [p.io_sleep] * p.io_tasks, pure=False), p)
        return _perf() - start

    def _cpu(self, p: Params) -> float:
        start = _perf()
        self._wait(self.client.map(spin, [p.cpu_loop] * p.cpu_tasks, pure=False), p)
        return _perf() - start

    def _one(self, fn: Callable[[str, int], float], p: Params) -> float:
        self._seq += 1
        name = f"unifex-bench-{os.getpid()}-{self._seq}"
        return float(self.client.submit(fn, name, p.ops, pure=False).result(p.limit))

    def _lock(self, p: Params) -> float:
        return self._one(dask_lock_ops, p)

    def _queue(self, p: Params) -> float:
        return self._one(dask_queue_ops, p)

    def _dict(self, p: Params) -> float:
        return self._one(dask_dict_ops, p)


#: raw library -> its subject class, made with ``(size, dask_client)``
RAW_CLASSES: dict[str, type[RawSubject]] = {
    "ThreadPoolExecutor": ThreadPoolSubject,
    "ProcessPoolExecutor": ProcessPoolSubject,
    "multiprocessing.Pool": MultiprocessingPoolSubject,
    "gevent.pool.Pool": GeventPoolSubject,
    "dask client": DaskClientSubject,
}


def raw_supports(raw: str, workload: str) -> bool:
    """Whether the raw library ``raw`` has an idiom for ``workload``."""
    return workload in RAW_CLASSES[raw].supported


@dataclass(frozen=True)
class RawInfo:
    label: str
    title: str


RAW: dict[str, RawInfo] = {
    "ThreadPoolExecutor": RawInfo("TPE", "concurrent.futures.ThreadPoolExecutor"),
    "ProcessPoolExecutor": RawInfo("PPE", "concurrent.futures.ProcessPoolExecutor (map: multiprocessing's chunk size)"),
    "multiprocessing.Pool": RawInfo("mp.Pool", "multiprocessing.Pool (apply_async, map)"),
    "gevent.pool.Pool": RawInfo("gevent.Pool", "gevent.pool.Pool (also the nearest raw library for greenlet)"),
    "dask client": RawInfo("client", "distributed client.submit / client.map (map in chunks) on the same cluster"),
}


# -- families: kinds that share a raw baseline, measured together ------------------


@dataclass(frozen=True)
class Family:
    name: str
    cost: str
    raws: tuple[str, ...]


# gevent and greenlet are measured in separate sessions, each beside its own
# gevent.pool.Pool: two cooperative executors in one thread stack their wait
# contexts, and a benchmark should measure each kind alone in its thread.
FAMILIES: dict[str, Family] = {
    "threads": Family("threads", "light", ("ThreadPoolExecutor",)),
    "process": Family("process", "process", ("ProcessPoolExecutor", "multiprocessing.Pool")),
    "gevent": Family("gevent", "light", ("gevent.pool.Pool",)),
    "greenlet": Family("greenlet", "light", ("gevent.pool.Pool",)),
    "dask": Family("dask", "dask", ("dask client",)),
}
_FAMILY_OF_KIND = {"thread": "threads", "pool": "threads", "serial": "threads", "process": "process", "gevent": "gevent", "greenlet": "greenlet", "dask": "dask"}


def family_of(kind: str) -> Family:
    """The family of ``kind``; a kind added by a third party is measured alone,
    with no raw baseline, at the process family's (moderate) repetition counts."""
    name = _FAMILY_OF_KIND.get(kind)
    if name is None:
        return Family(f"kind:{kind}", "process", ())
    return FAMILIES[name]


def _brief(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


@dataclass
class FamilySession:
    """The live subjects of one family, and what could not be started."""

    family: Family
    subjects: list[Subject] = field(default_factory=list)
    #: kind or raw name -> why it could not be started or warmed up
    errors: dict[str, str] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)
    #: subjects whose round hung: closed without waiting
    broken: set[str] = field(default_factory=set)


def _raw_sizes(kind_sizes: dict[str, int], kinds: Sequence[str], fallback: int) -> int:
    for kind in kinds:
        if kind in kind_sizes:
            return kind_sizes[kind]
    return fallback


@contextlib.contextmanager
def open_family(family: Family, kinds: Sequence[str], p: Params) -> Iterator[FamilySession]:
    """Start the executors of ``kinds`` and the raw libraries of ``family``, warm
    them up, and close everything on exit. A subject that cannot start is
    recorded in ``session.errors`` instead of raising."""
    session = FamilySession(family)
    cleanups: list[Callable[[], None]] = []
    try:
        dask_client: Any = None
        if family.name == "dask":
            try:
                cluster, dask_client = _start_dask()
            except Exception as exc:
                session.errors["dask client"] = f"could not start a dask LocalCluster: {_brief(exc)}"
            else:
                cleanups.append(lambda: _stop_dask(cluster, dask_client))
        for kind in kinds:
            try:
                options = {"client": dask_client} if kind == "dask" and dask_client is not None else {}
                ex = unifex.executor(kind, **options)
            except Exception as exc:
                session.errors[kind] = _brief(exc)
                continue
            mine = UnifexSubject(kind, ex)
            session.sizes[kind] = mine.size
            _start(session, mine, p)
        size = _raw_sizes(session.sizes, kinds, _family_default_size(family))
        for raw in family.raws:
            if raw in session.errors:
                continue
            try:
                raw_subject = RAW_CLASSES[raw](size, dask_client)
            except Exception as exc:
                session.errors[raw] = _brief(exc)
                continue
            session.sizes[raw] = size
            _start(session, raw_subject, p)
        yield session
    finally:
        for subject in reversed(session.subjects):
            try:
                subject.close(subject.name in session.broken)
            except Exception as exc:
                logging.getLogger("unifex").warning("unifex bench: closing %s failed: %s", subject.name, _brief(exc))
        for cleanup in reversed(cleanups):
            cleanup()


def _start(session: FamilySession, subject: Subject, p: Params) -> None:
    try:
        subject.warm_up(p)
    except Exception as exc:
        session.errors[subject.name] = f"warm-up failed: {_brief(exc)}"
        try:
            subject.close(True)
        except Exception:
            pass
        return
    session.subjects.append(subject)


def _family_default_size(family: Family) -> int:
    cpus = os.cpu_count() or 1
    return {"threads": min(32, cpus + 4), "gevent": 100}.get(family.name, cpus)


def _start_dask() -> tuple[Any, Any]:
    """A cluster like the one the ``dask`` kind embeds by default."""
    distributed = _distributed()
    cluster = distributed.LocalCluster(
        n_workers=os.cpu_count() or 1,
        threads_per_worker=1,
        processes=True,
        dashboard_address=":0",  # any free port: 8787 may be taken by another cluster
        silence_logs=logging.ERROR,
    )
    try:
        # the default client: distributed.wait() (the dask user's idiom) takes no client argument
        client = distributed.Client(cluster, set_as_default=True)
    except BaseException:
        cluster.close()
        raise
    return cluster, client


def _stop_dask(cluster: Any, client: Any) -> None:
    client.close()
    cluster.close()


# -- the run and its report -------------------------------------------------------


@dataclass
class Cell:
    """One subject on one workload: seconds per round, or why it failed."""

    samples: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        return statistics.median(self.samples) if self.samples and self.error is None else None


@dataclass
class Column:
    """A kind or a raw library: its size and its cells."""

    name: str
    family: str
    size: int | None = None
    error: str | None = None
    cells: dict[str, Cell] = field(default_factory=dict)
    #: the raw libraries this kind is compared with (kinds only)
    raws: tuple[str, ...] = ()


@dataclass
class Report:
    quick: bool
    machine: dict[str, Any]
    kinds: dict[str, Column] = field(default_factory=dict)
    #: family -> raw library -> its column (a raw library is measured in each family that uses it)
    raws: dict[str, dict[str, Column]] = field(default_factory=dict)
    params: dict[str, Params] = field(default_factory=dict)
    elapsed: float = 0.0

    def value(self, column: Column, workload: str) -> float | None:
        cell = column.cells.get(workload)
        seconds = None if cell is None else cell.seconds
        if seconds is None or seconds <= 0:
            return None
        return _WORKLOAD[workload].value(seconds, self.params[column.family])

    def ratio(self, kind: str, raw: str, workload: str) -> float | None:
        """unifex time / raw library time (below 1: unifex faster)."""
        mine = self.kinds[kind].cells.get(workload)
        column = self.raws.get(self.kinds[kind].family, {}).get(raw)
        theirs = None if column is None else column.cells.get(workload)
        if mine is None or theirs is None or mine.seconds is None or theirs.seconds is None or theirs.seconds <= 0:
            return None
        return mine.seconds / theirs.seconds

    def failures(self) -> list[str]:
        """``kind/workload`` for every unifex cell that has no number."""
        out = []
        for kind, column in self.kinds.items():
            for w in WORKLOAD_NAMES:
                if self.value(column, w) is None:
                    out.append(f"{kind}/{w}")
        return out

    def to_json(self) -> dict[str, Any]:
        def cells(column: Column, ratios: bool) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for w in WORKLOADS:
                cell = column.cells.get(w.name)
                if cell is None:
                    continue
                p = self.params[column.family]
                entry: dict[str, Any] = {
                    "median": self.value(column, w.name),
                    "unit": w.unit,
                    "median_seconds_per_round": cell.seconds,
                    "samples_seconds_per_round": cell.samples,
                    "error": cell.error,
                }
                if w.metric != "wall":
                    entry["count_per_round"] = w.count(p)
                if ratios:
                    entry["ratios"] = {raw: self.ratio(column.name, raw, w.name) for raw in column.raws}
                out[w.name] = entry
            return out

        return {
            "unifex_version": unifex.__version__,
            "quick": self.quick,
            "elapsed_seconds": round(self.elapsed, 2),
            "machine": self.machine,
            "ratio": "unifex seconds per round / raw library seconds per round, measured side by side; below 1 unifex is faster",
            "workloads": {
                w.name: {"unit": w.unit, "higher_is_better": w.higher_is_better, "description": {fam: w.describe(p) for fam, p in self.params.items()}}
                for w in WORKLOADS
            },
            "params": {fam: vars(p) for fam, p in self.params.items()},
            "kinds": {
                k: {"family": c.family, "size": c.size, "error": c.error, "raw": list(c.raws), "results": cells(c, True)} for k, c in self.kinds.items()
            },
            "raw": {
                fam: {r: {"size": c.size, "error": c.error, "title": RAW[r].title, "results": cells(c, False)} for r, c in raws.items()}
                for fam, raws in self.raws.items()
            },
        }


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    from importlib.metadata import PackageNotFoundError, version

    libraries = {}
    for name in ("gevent", "greenlet", "distributed"):
        try:
            libraries[name] = version(name)
        except PackageNotFoundError:
            pass
    cpu_model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "libraries": libraries,
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


#: progress(description, advance)
ProgressFn = Callable[[str, int], None]


def plan(kinds: Sequence[str], quick: bool) -> list[tuple[Family, list[str], Params]]:
    """Families to run, each with its kinds, in the order the kinds were given."""
    out: dict[str, tuple[Family, list[str], Params]] = {}
    for kind in kinds:
        fam = family_of(kind)
        if fam.name not in out:
            out[fam.name] = (fam, [], params_for(fam.cost, quick))
        out[fam.name][1].append(kind)
    return list(out.values())


def total_steps(kinds: Sequence[str], quick: bool) -> int:
    """Progress steps of a run: one per family start and one per measured round."""
    steps = 0
    for fam, fam_kinds, p in plan(kinds, quick):
        subjects = len(fam_kinds) + len(fam.raws)
        steps += 1 + sum(w.rounds(p) for w in WORKLOADS) * subjects
    return steps


def run(kinds: Sequence[str], quick: bool = False, progress: ProgressFn | None = None) -> Report:
    """Measure ``kinds`` on every workload beside their raw libraries."""
    began = _perf()
    report = Report(quick=quick, machine=machine_info())
    say: ProgressFn = progress or (lambda description, advance: None)
    for fam, fam_kinds, p in plan(kinds, quick):
        report.params[fam.name] = p
        for kind in fam_kinds:
            report.kinds[kind] = Column(kind, fam.name, raws=fam.raws)
        report.raws[fam.name] = {raw: Column(raw, fam.name) for raw in fam.raws}
        say(f"{fam.name}: starting {', '.join([*fam_kinds, *fam.raws])}", 0)
        _run_family(report, fam, fam_kinds, p, say)
    report.elapsed = _perf() - began
    return report


def _run_family(report: Report, fam: Family, kinds: list[str], p: Params, say: ProgressFn) -> None:
    names = [*kinds, *fam.raws]
    columns = {**{k: report.kinds[k] for k in kinds}, **report.raws[fam.name]}
    with open_family(fam, kinds, p) as session:
        say(f"{fam.name}: started", 1)
        for name, why in session.errors.items():
            columns[name].error = why
        for name, size in session.sizes.items():
            columns[name].size = size
        broken = session.broken
        alive = {s.name: s for s in session.subjects}
        for w in WORKLOADS:
            rounds = w.rounds(p)
            for r in range(rounds):
                # alternate the order so a drift in machine load does not favour one side
                order = names if r % 2 == 0 else names[::-1]
                for name in order:
                    say(f"{name}: {w.describe(p)} ({r + 1}/{rounds})", 1)
                    _one_round(columns[name], alive.get(name), w, p, broken)


def _one_round(column: Column, subject: Subject | None, w: Workload, p: Params, broken: set[str]) -> None:
    cell = column.cells.setdefault(w.name, Cell())
    if cell.error is not None:
        return
    if subject is None:
        cell.error = column.error or "not started"
        return
    if w.name not in subject.supported:
        cell.error = "n/a"
        return
    if subject.name in broken:
        cell.error = "skipped: an earlier round hung"
        return
    gc.collect()
    try:
        seconds = subject.measure(w.name, p)
    except Exception as exc:
        cell.error = _brief(exc)
        if isinstance(exc, TimeoutError):
            broken.add(subject.name)
        return
    if not seconds > 0:
        cell.error = f"measured a non-positive time ({seconds!r}): the clock is too coarse for this workload"
        return
    cell.samples.append(seconds)


# -- presentation -----------------------------------------------------------------


def format_value(value: float, unit: str) -> str:
    if unit == "tasks/s":
        if value >= 1e6:
            return f"{value / 1e6:.2f} M/s"
        if value >= 1e3:
            return f"{value / 1e3:.1f} k/s"
        return f"{value:.0f} /s"
    if value >= 100:
        text = f"{value:,.0f}"
    elif value >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit.split('/', 1)[0]}"


def format_ratio(ratio: float) -> str:
    """Two decimals; two significant digits below 0.1, so 0.003 does not read as 0.00."""
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.2g}"


def cell_text(report: Report, kind: str, workload: str, limit: int = 48) -> str:
    """``29.1 µs`` over ``x1.05 TPE`` (with a multiplication sign); or the error, cut short."""
    column = report.kinds[kind]
    value = report.value(column, workload)
    if value is None:
        cell = column.cells.get(workload)
        error = (cell.error if cell is not None else None) or column.error or "no result"
        return "error: " + (error if len(error) <= limit else error[: limit - 1] + "…")
    w = _WORKLOAD[workload]
    lines = [format_value(value, w.unit)]
    ratios = []
    for raw in column.raws:
        ratio = report.ratio(kind, raw, workload)
        if ratio is not None:
            ratios.append(f"{TIMES}{format_ratio(ratio)} {RAW[raw].label}")
    if ratios:
        lines.append(" · ".join(ratios))
    return "\n".join(lines)


def machine_line(machine: dict[str, Any]) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in machine.get("libraries", {}).items())
    load = machine.get("load_average_1min")
    text = f"{machine['cpu_count']} CPUs ({machine['cpu_model']}), {machine['implementation']} {machine['python']}, {machine['platform']}"
    if libs:
        text += f"; {libs}"
    if load is not None:
        text += f"; load average {load} at the start"
    return text


def render_table(report: Report) -> Any:
    """The report as one ``rich`` table: rows workloads, columns kinds."""
    from rich.table import Table

    mode = "quick run" if report.quick else "full run"
    table = Table(
        title=f"unifex bench ({mode}, {report.elapsed:.0f} s)",
        caption=(
            f"median of the rounds; {TIMES}R = unifex time ÷ raw library time for the same work, side by side "
            "(below 1.00: unifex faster). "
            + "; ".join(f"{RAW[r].label} = {RAW[r].title}" for r in dict.fromkeys(r for raws in report.raws.values() for r in raws))
            + f".\nMachine: {machine_line(report.machine)}"
        ),
        show_lines=True,
    )
    table.add_column("workload", style="bold")
    for kind, column in report.kinds.items():
        size = f" (size {column.size})" if column.size is not None else ""
        table.add_column(f"{kind}{size}", justify="right")
    first = next(iter(report.params.values()), None)
    for w in WORKLOADS:
        label = w.describe(first) if first is not None else w.name
        better = "higher" if w.higher_is_better else "lower"
        table.add_row(f"{label}\n[dim]{w.unit}, {better} is better[/dim]", *(cell_text(report, k, w.name) for k in report.kinds))
    return table


def markdown_table(report: Report) -> str:
    """The same table in Markdown, for the README."""
    first = next(iter(report.params.values()))
    kinds = list(report.kinds)
    head = "| workload | " + " | ".join(f"{k} (size {report.kinds[k].size})" for k in kinds) + " |"
    rows = [head, "|" + "---|" * (len(kinds) + 1)]
    for w in WORKLOADS:
        cells = [cell_text(report, k, w.name).replace("\n", "<br>") for k in kinds]
        rows.append(f"| {w.describe(first)} ({w.unit}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


class PlotUnavailableError(RuntimeError):
    """``--plot`` was asked for but matplotlib is not installed."""


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailableError(
            "--plot needs matplotlib, which is not installed; install it with: pip install 'unifex[plot]' (or run without --plot)"
        ) from None


def plot(report: Report, path: str) -> None:
    """A bar chart of the table: one panel per workload, each kind's bar beside
    its raw library's (hatched), on a log scale."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(report.kinds)
    cols = 2
    rows = math.ceil(len(WORKLOADS) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.2 * rows), squeeze=False)
    first = next(iter(report.params.values()))
    for ax, w in zip(axes.flat, WORKLOADS, strict=False):
        xs, mine, theirs = [], [], []
        for i, kind in enumerate(kinds):
            xs.append(i)
            mine.append(report.value(report.kinds[kind], w.name) or 0.0)
            column = report.kinds[kind]
            raw_column = report.raws.get(column.family, {}).get(column.raws[0]) if column.raws else None
            raw_value = report.value(raw_column, w.name) if raw_column is not None else None
            theirs.append(raw_value or 0.0)
        width = 0.4
        ax.bar([x - width / 2 for x in xs], mine, width, label="unifex", color="#3b75af")
        ax.bar([x + width / 2 for x in xs], theirs, width, label="raw library", color="#c8c8c8", hatch="//", edgecolor="#777777")
        ax.set_xticks(xs)
        ax.set_xticklabels(kinds)
        if any(v > 0 for v in mine + theirs):
            ax.set_yscale("log")
        better = "higher" if w.higher_is_better else "lower"
        ax.set_title(f"{w.describe(first)}\n{w.unit}, {better} is better", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(WORKLOADS) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"unifex bench: {machine_line(report.machine)}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
