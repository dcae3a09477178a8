"""What ``unifex bench`` measures: a unifex executor (``UnifexSubject``) or the
raw library it wraps (``RawSubject``), grouped in families that share a baseline.

``open_family`` starts a family's executors and raw pools (and the dask cluster
they share), warms them up and closes them; each subject runs one round of a
workload at a time and returns the seconds it took.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import importlib
import importlib.util
import logging
import math
import os
import queue
import threading
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import unifex

from .workloads import (
    WORKLOAD_NAMES,
    Params,
    array_sum,
    by_name,
    dask_dict_ops,
    dask_lock_ops,
    dask_queue_ops,
    dict_ops,
    distributed_module,
    large_arrays,
    lock_ops,
    noop,
    noop_arg,
    perf,
    queue_ops,
    release_large_arrays,
    spin,
    square,
    square_chunk,
    time_sleep,
    unifex_sleep,
)

__all__ = [
    "FAMILIES",
    "RAW",
    "RAW_CLASSES",
    "Family",
    "FamilySession",
    "RawInfo",
    "RawSubject",
    "Subject",
    "UnifexSubject",
    "brief",
    "family_of",
    "open_family",
    "raw_supports",
]


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

    def shared(self, name: str) -> Any:
        """The ``Lock``, ``Queue`` or ``dict`` the shared-state rounds pass to a task."""
        raise NotImplementedError

    def _shared_round(self, ops: Callable[[Any, int], float], name: str, p: Params) -> float:
        return float(self.target.submit(ops, self.shared(name), p.ops).result(p.limit))

    def _lock(self, p: Params) -> float:
        return self._shared_round(lock_ops, "Lock", p)

    def _queue(self, p: Params) -> float:
        return self._shared_round(queue_ops, "Queue", p)

    def _dict(self, p: Params) -> float:
        return self._shared_round(dict_ops, "dict", p)

    def _overhead(self, p: Params) -> float:
        submit, limit = self.target.submit, p.limit
        start = perf()
        for _ in range(p.overhead_tasks):
            submit(noop).result(limit)
        return perf() - start

    def _map(self, p: Params) -> float:
        start = perf()
        deque(self.target.map(square, range(p.map_tasks), timeout=p.limit), maxlen=0)
        return perf() - start

    def _fan_out(self, fn: Callable[[Any], Any], args: Sequence[Any], limit: float) -> float:
        submit = self.target.submit
        start = perf()
        futs = [submit(fn, arg) for arg in args]
        for f in futs:
            f.result(limit)
        return perf() - start

    def _io(self, p: Params) -> float:
        return self._fan_out(type(self).sleep, [p.io_sleep] * p.io_tasks, p.limit)

    def _cpu(self, p: Params) -> float:
        return self._fan_out(spin, [p.cpu_loop] * p.cpu_tasks, p.limit)

    def _large(self, p: Params) -> float:
        return self._fan_out(array_sum, large_arrays(p), p.limit)


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

    def shared(self, name: str) -> Any:
        """The executor's own helper (``ex.Lock()``, ...), made once."""
        helper = self._helpers.get(name)
        if helper is None:
            helper = self._helpers[name] = getattr(self.ex, name)()
        return helper

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

    def shared(self, name: str) -> Any:
        """A new ``threading.Lock``, ``queue.Queue`` or ``dict``."""
        return {"Lock": threading.Lock, "Queue": queue.Queue, "dict": dict}[name]()

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
        start = perf()
        deque(self.pool.map(square, range(p.map_tasks), timeout=p.limit, chunksize=chunksize), maxlen=0)
        return perf() - start

    def shared(self, name: str) -> Any:
        """A proxy from one ``multiprocessing.Manager`` (started on first use), made once."""
        if self._manager is None:
            self._manager = self.ctx.Manager()
        proxy = self._proxies.get(name)
        if proxy is None:
            proxy = self._proxies[name] = getattr(self._manager, name)()
        return proxy

    def close(self, broken: bool) -> None:
        self._proxies.clear()
        try:
            super().close(broken)
        finally:
            if self._manager is not None:
                self._manager.shutdown()


class MultiprocessingPoolSubject(RawSubject):
    """``multiprocessing.Pool``: ``apply_async`` and ``map`` with its default
    chunking; large arrays one per task (``chunksize=1``)."""

    name = "multiprocessing.Pool"
    label = "mp.Pool"
    supported = frozenset({"overhead", "map", "large"})

    def __init__(self, size: int, client: Any = None) -> None:
        self.size = size
        self.pool = process_context().Pool(size)

    def warm_up(self, p: Params) -> None:
        self.pool.map_async(square, range(4 * self.size), chunksize=1).get(p.limit)

    def _overhead(self, p: Params) -> float:
        apply_async, limit = self.pool.apply_async, p.limit
        start = perf()
        for _ in range(p.overhead_tasks):
            apply_async(noop).get(limit)
        return perf() - start

    def _map(self, p: Params) -> float:
        start = perf()
        self.pool.map_async(square, range(p.map_tasks)).get(p.limit)
        return perf() - start

    def _large(self, p: Params) -> float:
        arrays = large_arrays(p)
        start = perf()
        self.pool.map_async(array_sum, arrays, chunksize=1).get(p.limit)
        return perf() - start

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
            start = perf()
            for _ in range(p.overhead_tasks):
                spawn(noop).get()
            return perf() - start

    def _map(self, p: Params) -> float:
        with self._timeout(p):
            start = perf()
            self.pool.map(square, range(p.map_tasks))
            return perf() - start

    def _fan_out(self, fn: Callable[[Any], Any], args: Sequence[Any], p: Params) -> float:
        spawn = self.pool.spawn
        with self._timeout(p):
            start = perf()
            greenlets = [spawn(fn, arg) for arg in args]
            for g in greenlets:
                g.get()
            return perf() - start

    def _io(self, p: Params) -> float:
        import gevent

        return self._fan_out(gevent.sleep, [p.io_sleep] * p.io_tasks, p)

    def _cpu(self, p: Params) -> float:
        return self._fan_out(spin, [p.cpu_loop] * p.cpu_tasks, p)

    def _large(self, p: Params) -> float:
        return self._fan_out(array_sum, large_arrays(p), p)

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
        distributed_module().wait(futs, timeout=p.limit)
        return list(self.client.gather(futs))  # one batch; raises the first task error

    def warm_up(self, p: Params) -> None:
        self._wait(self.client.map(noop_arg, range(2 * self.size), pure=False), p)

    def _overhead(self, p: Params) -> float:
        submit, limit = self.client.submit, p.limit
        start = perf()
        for _ in range(p.overhead_tasks):
            submit(noop, pure=False).result(limit)
        return perf() - start

    def _map(self, p: Params) -> float:
        n = p.map_tasks
        step = mp_default_chunksize(n, self.size)
        start = perf()
        chunks = [list(range(i, min(i + step, n))) for i in range(0, n, step)]
        self._wait(self.client.map(square_chunk, chunks, pure=False), p)
        return perf() - start

    def _io(self, p: Params) -> float:
        start = perf()
        self._wait(self.client.map(time_sleep, [p.io_sleep] * p.io_tasks, pure=False), p)
        return perf() - start

    def _cpu(self, p: Params) -> float:
        start = perf()
        self._wait(self.client.map(spin, [p.cpu_loop] * p.cpu_tasks, pure=False), p)
        return perf() - start

    def _large(self, p: Params) -> float:
        # dask's idiom for large data: scatter it to the workers, then map over it
        arrays = large_arrays(p)
        start = perf()
        data = self.client.scatter(arrays, hash=False)
        self._wait(self.client.map(array_sum, data, pure=False), p)
        elapsed = perf() - start
        self.client.cancel(data)
        return elapsed

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


class JoblibSubject(RawSubject):
    """``joblib.Parallel(n_jobs=size)`` (loky workers; arrays over 1 MB go by
    memory-mapped file): only the large-array workload, where that matters."""

    name = "joblib"
    label = "joblib"
    supported = frozenset({"large"})

    def __init__(self, size: int, client: Any = None) -> None:
        self.size = size
        self._joblib = importlib.import_module("joblib")
        self._parallel: Any = None

    def warm_up(self, p: Params) -> None:
        # entered once, so every round reuses the same workers and memmap folder
        self._parallel = self._joblib.Parallel(n_jobs=self.size, timeout=p.limit)
        self._parallel.__enter__()
        self._parallel(self._joblib.delayed(noop_arg)(i) for i in range(2 * self.size))

    def _large(self, p: Params) -> float:
        arrays, delayed = large_arrays(p), self._joblib.delayed
        start = perf()
        self._parallel(delayed(array_sum)(a) for a in arrays)
        return perf() - start

    def close(self, broken: bool) -> None:
        if self._parallel is None:
            return
        self._parallel.__exit__(None, None, None)
        # loky keeps its workers for the next Parallel: stop them with the run
        loky = importlib.import_module("joblib.externals.loky")
        loky.get_reusable_executor(max_workers=self.size).shutdown(wait=not broken, kill_workers=True)


#: raw library -> its subject class, made with ``(size, dask_client)``
RAW_CLASSES: dict[str, type[RawSubject]] = {
    "ThreadPoolExecutor": ThreadPoolSubject,
    "ProcessPoolExecutor": ProcessPoolSubject,
    "multiprocessing.Pool": MultiprocessingPoolSubject,
    "gevent.pool.Pool": GeventPoolSubject,
    "dask client": DaskClientSubject,
    "joblib": JoblibSubject,
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
    "dask client": RawInfo("client", "distributed client.submit / client.map (map in chunks, large arrays scattered) on the same cluster"),
    "joblib": RawInfo("joblib", "joblib.Parallel (loky; large arrays only)"),
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
    # joblib is optional: the large-array row compares process with it where it is installed
    "process": Family("process", "process", ("ProcessPoolExecutor", "multiprocessing.Pool", *(("joblib",) if importlib.util.find_spec("joblib") else ()))),
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


def brief(exc: BaseException) -> str:
    """The first line of an error, after its type: what a table cell has room for."""
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
                session.errors["dask client"] = f"could not start a dask LocalCluster: {brief(exc)}"
            else:
                cleanups.append(lambda: _stop_dask(cluster, dask_client))
        for kind in kinds:
            try:
                options = {"client": dask_client} if kind == "dask" and dask_client is not None else {}
                ex = unifex.executor(kind, **options)
            except Exception as exc:
                session.errors[kind] = brief(exc)
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
                session.errors[raw] = brief(exc)
                continue
            session.sizes[raw] = size
            _start(session, raw_subject, p)
        if by_name("large").missing() is None:
            large_arrays(p)  # made now, so no timed round pays for it
        yield session
    finally:
        release_large_arrays()
        for subject in reversed(session.subjects):
            try:
                subject.close(subject.name in session.broken)
            except Exception as exc:
                logging.getLogger("unifex").warning("unifex bench: closing %s failed: %s", subject.name, brief(exc))
        for cleanup in reversed(cleanups):
            cleanup()


def _start(session: FamilySession, subject: Subject, p: Params) -> None:
    try:
        subject.warm_up(p)
    except Exception as exc:
        session.errors[subject.name] = f"warm-up failed: {brief(exc)}"
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
    distributed = distributed_module()
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

