"""CPython's own tests of its locks and queue (``Lib/test/lock_tests.py`` and
``Lib/test/test_queue.py``, vendored in ``cpython_helpers/``), run against the
helpers of every kind: the helpers are drop-in stdlib (SPEC 4).

Each vendored test class runs with its factory (``locktype``, ``semtype``,
``type2test``, ...) pointed at the helper factory of an executor made for
that test. The tests start threads to contend for the
helpers. Under the cooperative kinds (``gevent``, ``greenlet``) a helper
belongs to the tasks of one hub or scheduler, which another OS thread may not
touch, so there those "threads" are tasks of the executor and ``time.sleep``
is ``unifex.sleep`` (see ``docs/helpers.md``). Every remaining difference is
listed in ``EXPECTED_DIFFERENCES`` with its reason and runs as a strict xfail.
"""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import threading
import time
import types
import unittest
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import unifex
from unifex.testing import KindConfig, configurations, one_per_kind

HERE = Path(__file__).parent / "cpython_helpers"


def _load(name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"unifex_peer_{name}", HERE / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


lock_tests = _load("lock_tests")
test_queue = _load("test_queue")


class QueueTests(test_queue.BaseQueueTestMixin, unittest.TestCase):  # type: ignore[misc,name-defined]
    """``test_queue.QueueTest`` with the stdlib ``queue`` module for Empty/Full."""

    __test__ = False  # run by test_cpython_suite, with a kind's factory

    import queue as queue  # noqa: PLC0414 - the tests look up self.queue.Empty / .Full

    type2test: Callable[..., Any]

    def setUp(self) -> None:
        super().setUp()
        self.type2test = type(self).factory  # type: ignore[attr-defined]


#: vendored class -> (its factory attribute, the helper factory's name)
CLASSES: dict[str, tuple[type[unittest.TestCase], str, str]] = {
    "LockTests": (lock_tests.LockTests, "locktype", "Lock"),
    "RLockTests": (lock_tests.RLockTests, "locktype", "RLock"),
    "EventTests": (lock_tests.EventTests, "eventtype", "Event"),
    "ConditionTests": (lock_tests.ConditionTests, "condtype", "Condition"),
    "SemaphoreTests": (lock_tests.SemaphoreTests, "semtype", "Semaphore"),
    "BoundedSemaphoreTests": (lock_tests.BoundedSemaphoreTests, "semtype", "BoundedSemaphore"),
    "QueueTest": (QueueTests, "factory", "Queue"),
}

CASES = [(cls_name, method) for cls_name, (cls, _, _) in CLASSES.items() for method in unittest.TestLoader().getTestCaseNames(cls)]

#: (kind, class, method) -> why that kind differs from the stdlib there, as
#: documented in docs/helpers.md; each runs as xfail(strict=True)
EXPECTED_DIFFERENCES: dict[tuple[str, str, str], str] = {}
_PRIVATE_COND = "reads threading.Event's private _cond Condition; this kind's Event is not built on one"
_SHARED_LOCK_FORK = "a lock shared with other processes is not reset by _at_fork_reinit: its holder may be another live process"
_FOREIGN_LOCK = "Condition(threading.Lock()): a threading.Lock cannot cross processes; this kind's Condition takes a Lock of the same executor (TypeError)"
for _kind in ("gevent", "greenlet", "dask"):
    EXPECTED_DIFFERENCES[(_kind, "EventTests", "test_at_fork_reinit")] = _PRIVATE_COND
for _kind in ("process", "dask"):
    EXPECTED_DIFFERENCES[(_kind, "LockTests", "test_at_fork_reinit")] = _SHARED_LOCK_FORK
    EXPECTED_DIFFERENCES[(_kind, "ConditionTests", "test_acquire")] = _FOREIGN_LOCK


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "peer_kind" not in metafunc.fixturenames:
        return
    seen: dict[str, KindConfig] = {}
    for config in one_per_kind(configurations(metafunc.config.getoption("--unifex-kinds"))):
        seen.setdefault(config.kind, config)  # the helpers do not depend on a kind's options
    params = []
    for config in seen.values():
        for cls_name, method in CASES:
            reason = EXPECTED_DIFFERENCES.get((config.kind, cls_name, method))
            marks = [pytest.mark.xfail(strict=True, reason=reason)] if reason else []
            params.append(pytest.param(config, cls_name, method, id=f"{config.kind}-{cls_name}.{method}", marks=marks))
    metafunc.parametrize(("peer_kind", "cls_name", "method"), params)


@pytest.fixture
def peer_executor(peer_kind: KindConfig) -> Iterator[Any]:
    # one per test: helpers (named semaphores, shared memory) go when it closes;
    # under the cooperative kinds the tests' "threads" are its tasks
    size = 16 if peer_kind.has("cooperative") else 2
    ex = unifex.executor(peer_kind.kind, size=size, **peer_kind.options)
    try:
        yield ex
    finally:
        ex.terminate()
        ex.close(wait=True)


# -- threads as tasks, for the cooperative kinds ------------------------------------------


class _Tasks:
    """What the vendored tests take from ``_thread``, ``threading``, ``time``,
    ``test.support`` and ``threading_helper``, done with tasks of ``ex``."""

    def __init__(self, ex: Any) -> None:
        self.ex = ex
        self.futures: list[Any] = []
        self.real_support = lock_tests.support

    def start_new_thread(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> int:
        self.futures.append(self.ex.submit(fn, *args))
        return len(self.futures)

    def join_all(self, timeout: float | None = None) -> None:
        futures, self.futures = self.futures, []
        for fut in futures:
            fut.result(timeout=timeout or self.real_support.SHORT_TIMEOUT)

    def sleeping_retry(self, timeout: float, err_msg: str | None = None, /, **kw: Any) -> Iterator[None]:
        end = time.monotonic() + timeout
        delay = 0.010
        while True:
            yield
            if time.monotonic() > end:
                raise AssertionError(err_msg or f"timeout ({timeout} seconds)")
            unifex.sleep(delay)
            delay = min(delay * 2, 1.0)

    @contextlib.contextmanager
    def wait_threads_exit(self, timeout: float | None = None) -> Iterator[None]:
        try:
            yield
        finally:
            self.join_all(timeout)

    def modules(self) -> dict[str, Any]:
        """Replacement globals for the vendored modules."""
        tasks = self

        class TaskThread:
            def __init__(self, target: Callable[..., Any] | None = None, args: tuple[Any, ...] = ()) -> None:
                self._target, self._args = target, args
                self._fut: Any = None

            def start(self) -> None:
                self._fut = tasks.ex.submit(self.run)

            def run(self) -> None:
                assert self._target is not None
                self._target(*self._args)

            def join(self, timeout: float | None = None) -> None:
                self._fut.result(timeout=timeout or tasks.real_support.SHORT_TIMEOUT)

            def is_alive(self) -> bool:
                return self._fut is not None and not self._fut.done()

        class TriggerTask(TaskThread):
            """``test_queue._TriggerThread`` as a task."""

            def __init__(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
                super().__init__()
                self.fn, self.args = fn, args
                self.startedEvent = tasks.ex.Event()

            def run(self) -> None:
                unifex.sleep(0.1)
                self.startedEvent.set()
                self.fn(*self.args)

        real = self.real_support
        support = types.SimpleNamespace(**{k: getattr(real, k) for k in dir(real) if not k.startswith("__")})
        support.sleeping_retry = self.sleeping_retry
        helper = types.SimpleNamespace(
            threading_setup=lambda: (),
            threading_cleanup=lambda *a: self.join_all(),
            wait_threads_exit=self.wait_threads_exit,
            join_thread=lambda thread, timeout=None: thread.join(timeout),
        )
        clock = types.SimpleNamespace(sleep=unifex.sleep, monotonic=time.monotonic)
        fake_threading = types.SimpleNamespace(**{k: getattr(threading, k) for k in dir(threading) if not k.startswith("__")})
        fake_threading.Thread = TaskThread
        return {
            "start_new_thread": self.start_new_thread,
            "support": support,
            "threading_helper": helper,
            "time": clock,
            "threading": fake_threading,
            "_TriggerThread": TriggerTask,
        }


@contextlib.contextmanager
def _threads_as_tasks(ex: Any) -> Iterator[None]:
    replacements = _Tasks(ex).modules()
    saved: list[tuple[types.ModuleType, str, Any]] = []
    for module in (lock_tests, test_queue):
        for name, value in replacements.items():
            if hasattr(module, name):
                saved.append((module, name, getattr(module, name)))
                setattr(module, name, value)
    try:
        yield
    finally:
        for module, name, value in saved:
            setattr(module, name, value)


# -- the driver -------------------------------------------------------------------------


def test_cpython_suite(peer_kind: KindConfig, peer_executor: Any, cls_name: str, method: str) -> None:
    cls, attribute, factory_name = CLASSES[cls_name]
    factory = getattr(peer_executor, factory_name)
    bound = type(cls.__name__, (cls,), {attribute: staticmethod(factory)})
    case = bound(method)
    result = unittest.TestResult()
    cooperative = peer_kind.has("cooperative")
    with _threads_as_tasks(peer_executor) if cooperative else contextlib.nullcontext():
        case.run(result)
    assert not result.skipped, f"CPython's test skipped itself: {result.skipped[0][1]}"
    problems = result.failures + result.errors
    if problems:
        pytest.fail(problems[0][1], pytrace=False)
