"""CPython 3.11's own ``test_concurrent_futures`` (vendored unchanged in
``cpython_test_concurrent_futures.py``; provenance in ``README.md``), driven
against every unifex kind.

Its executor-independent test classes (``ExecutorTest``, ``WaitTests``,
``AsCompletedTests``, ``ExecutorShutdownTest``) run with a unifex executor of
each kind as ``self.executor``; the tests themselves only use
``concurrent.futures`` names (``futures.wait``, ``futures.as_completed``,
``Future`` ...). ``FutureTests`` runs with the suite's ``Future`` bound to
``unifex.Future``. Tests that read ``ThreadPoolExecutor``/``ProcessPoolExecutor``
internals are not collected; tests whose difference is a documented decision of
the contract are marked ``xfail(strict=True)`` with the reason (the same list is
in ``docs/ecosystem.md``). Three tests start an interpreter with a
``concurrent.futures`` executor by class name; they are re-spelled here with
``unifex.executor(kind)``, asserting what the originals assert.

Environment shims (not changes to what is tested): the suite's ``time.sleep``
is ``unifex.sleep`` (plain ``time.sleep`` outside cooperative tasks, a yield to
the hub/scheduler inside them), and unifex's callback-error log goes to the
current ``sys.stderr`` as the stdlib's lastResort handler would.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import time
import types
from pathlib import Path
from typing import Any

import pytest

import unifex
from unifex.testing import KindConfig, configurations, one_per_kind

HERE = Path(__file__).parent
VENDORED = HERE / "cpython_test_concurrent_futures.py"

try:
    import test.support  # noqa: F401 - CPython's test package: the suite needs it
    from test.support.script_helper import assert_python_ok
except ImportError:  # pragma: no cover - a Python without its test package
    pytest.skip("CPython's test package (test.support) is not installed with this Python", allow_module_level=True)


def _load(name: str, unifex_future: bool) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, VENDORED)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    module.time = types.SimpleNamespace(sleep=unifex.sleep, monotonic=time.monotonic)  # type: ignore[attr-defined]
    if unifex_future:
        module.Future = unifex.Future  # type: ignore[attr-defined]
        cf = module.create_future
        module.PENDING_FUTURE = cf(state=module.PENDING)  # type: ignore[attr-defined]
        module.RUNNING_FUTURE = cf(state=module.RUNNING)  # type: ignore[attr-defined]
        module.CANCELLED_FUTURE = cf(state=module.CANCELLED)  # type: ignore[attr-defined]
        module.CANCELLED_AND_NOTIFIED_FUTURE = cf(state=module.CANCELLED_AND_NOTIFIED)  # type: ignore[attr-defined]
        module.EXCEPTION_FUTURE = cf(state=module.FINISHED, exception=OSError())  # type: ignore[attr-defined]
        module.SUCCESSFUL_FUTURE = cf(state=module.FINISHED, result=42)  # type: ignore[attr-defined]
    return module


# under its own name, from a directory on sys.path: worker processes (spawn,
# forkserver, dask) import its task functions by reference, as the stdlib's do
sys.path.insert(0, str(HERE))
cfs = _load(VENDORED.stem, unifex_future=False)
ufs = _load("unifex_peer_cf_unifex_future", unifex_future=True)


class _StderrNow(logging.Handler):
    """Writes to whatever ``sys.stderr`` is at the time (captured_stderr swaps it)."""

    def emit(self, record: logging.LogRecord) -> None:
        sys.stderr.write(self.format(record) + "\n")


# -- what differs, and why (mirrored in docs/ecosystem.md) ------------------------------

_SERIAL = "serial runs each task in the caller at submit: nothing is left pending while the caller waits"
_COOP_NOT_STARTED = (
    "gevent starts tasks only when the caller's thread yields: at shutdown(cancel_futures=True) right after "
    "submitting, none has started, so all are cancelled (the test wants some to have run)"
)
_CALLER_BLOCKS = (
    "the caller blocks its thread on threading.Event.wait, so the cooperative kind's tasks, which run in that thread, "
    "never run (the contract: wait with unifex calls or the executor's helpers)"
)
DIFFERENCES: dict[tuple[str, str], str] = {
    # (kind or "*", test name) -> reason
    ("serial", "test_first_completed"): _SERIAL,
    ("serial", "test_first_completed_some_already_completed"): _SERIAL,
    ("serial", "test_first_exception"): _SERIAL,
    ("serial", "test_first_exception_some_already_complete"): _SERIAL,
    ("serial", "test_first_exception_one_already_failed"): _SERIAL,
    ("serial", "test_timeout"): _SERIAL,
    ("serial", "test_zero_timeout"): _SERIAL,
    ("serial", "test_map_timeout"): _SERIAL,
    ("serial", "test_cancel_futures"): _SERIAL,
    ("gevent", "test_cancel_futures"): _COOP_NOT_STARTED,
    ("*", "test_cancel"): "a unifex future notifies its waiters when it is cancelled, so cancel() moves it to CANCELLED_AND_NOTIFIED at once",
}

_BLOCKS = (
    "a task blocks its thread on a threading.Event that only the caller sets later; on this kind the task runs in the "
    "caller's thread, so the wait never ends (the contract: use the executor's helpers, ex.Event())"
)
_NOT_YET_ASSIGNED = (
    "a task is marked running only when a started worker takes it; right after submitting, no worker has taken one yet "
    "(workers are starting), so shutdown(cancel_futures=True) may cancel all of them (the test wants some to have run)"
)
_DASK_EXIT_LOG = (
    "the tasks run at exit (test_exit_drain checks it) and the embedded cluster closes quietly (workers before the "
    "scheduler, worker logs silenced), but on a loaded machine distributed may warn on stderr at startup that creating "
    "its scratch directories is slow, and the test wants stderr empty"
)
# timing-dependent differences: xfail, not strict
SOMETIMES: dict[tuple[str, str], str] = {
    ("process", "test_cancel_futures"): _NOT_YET_ASSIGNED,
    ("dask", "test_cancel_futures"): _NOT_YET_ASSIGNED,
    ("greenlet", "test_cancel_futures"): _NOT_YET_ASSIGNED,
    ("dask", "test_interpreter_shutdown"): _DASK_EXIT_LOG,
    ("dask", "test_hang_gh83386"): _DASK_EXIT_LOG,
}

# tests that would hang, not fail: skipped with their reason, not xfailed
HANGS: dict[tuple[str, str], str] = {
    (kind, name): _BLOCKS
    for kind in ("serial", "gevent", "greenlet")
    for name in ("test_executor_map_current_future_cancel", "test_pending_calls_race")
}
# the caller blocks its thread on threading.Event.wait(30): on the cooperative
# kinds it waits out the 30 s, then fails; skipped with the reason instead
HANGS.update({(kind, "test_no_stale_references"): _CALLER_BLOCKS for kind in ("gevent", "greenlet")})

# read ThreadPoolExecutor/ProcessPoolExecutor internals (_threads, _max_workers, ...) or its constructor
INTERNALS = {"test_max_workers_negative", "test_default_workers", "test_saturation", "test_idle_thread_reuse"}


def _own(cls: type, name: str) -> Any:
    """``cls``'s own copy of the inherited test ``name``: a pytest mark sets an
    attribute on the function it marks, and the vendored classes' functions are
    shared by every kind's subclass, so a mark for one kind would land on all."""
    func = getattr(cls, name)
    if not isinstance(func, types.FunctionType):
        return func
    copy = types.FunctionType(func.__code__, func.__globals__, func.__name__, func.__defaults__, func.__closure__)
    copy.__qualname__ = func.__qualname__
    copy.__doc__ = func.__doc__
    copy.__dict__.update({k: v for k, v in func.__dict__.items() if k != "pytestmark"})
    own_marks = cls.__dict__.get(name)
    if own_marks is not None and hasattr(own_marks, "pytestmark"):
        copy.pytestmark = list(own_marks.pytestmark)  # type: ignore[attr-defined]
    setattr(cls, name, copy)
    return copy


def _mark(kind: str, cls: type) -> type:
    for name in dir(cls):
        if not name.startswith("test_"):
            continue
        if getattr(cls, name) is not None and name not in INTERNALS:
            _own(cls, name)
        reason = DIFFERENCES.get((kind, name)) or DIFFERENCES.get(("*", name))
        if reason is not None:
            setattr(cls, name, pytest.mark.xfail(reason=reason, strict=True)(getattr(cls, name)))
        sometimes = SOMETIMES.get((kind, name))
        if sometimes is not None:
            setattr(cls, name, pytest.mark.xfail(reason=sometimes, strict=False)(getattr(cls, name)))
        hang = HANGS.get((kind, name))
        if hang is not None:
            setattr(cls, name, pytest.mark.skip(reason=hang)(getattr(cls, name)))
        if name in INTERNALS:
            setattr(cls, name, None)
    return cls


def _factory(config: KindConfig) -> Any:
    def make(max_workers: int | None = None, **kwargs: Any) -> Any:
        return unifex.executor(config.kind, size=max_workers, **config.options, **kwargs)

    make.__name__ = f"unifex_{config.kind}"
    return staticmethod(make)


_EXIT_SCRIPT = """if 1:
    import sys, time
    import unifex

    def sleep_and_print(t, msg):
        time.sleep(t)
        print(msg)
        sys.stdout.flush()

    if __name__ == "__main__":
        t = unifex.executor({kind!r}, 5, **{options!r})
        t.submit(sleep_and_print, 1.0, "apple")
        {extra}
"""

_SUBMIT_AT_EXIT = """if 1:
    import atexit
    @atexit.register
    def run_last():
        try:
            t.submit(id, None)
        except RuntimeError:
            print("runtime-error")
            raise
    import unifex
    if __name__ == "__main__":
        t = unifex.executor({kind!r}, 5, **{options!r})
        t.submit(id, 42).result()
"""


class UnifexShutdownMixin:
    """The three interpreter-exit tests, spelled with ``unifex.executor``."""

    kind_config: KindConfig

    def _script_options(self) -> dict[str, Any]:
        # a joined dask cluster belongs to the test session, not to the child
        return {} if self.kind_config.kind == "dask" else dict(self.kind_config.options)

    def test_interpreter_shutdown(self) -> None:
        script = _EXIT_SCRIPT.format(kind=self.kind_config.kind, options=self._script_options(), extra="")
        _rc, out, err = assert_python_ok("-c", script, PYTHONPATH=os.pathsep.join(sys.path))
        self.assertFalse(err)  # type: ignore[attr-defined]
        self.assertEqual(out.strip(), b"apple")  # type: ignore[attr-defined]

    def test_hang_gh83386(self) -> None:
        script = _EXIT_SCRIPT.format(kind=self.kind_config.kind, options=self._script_options(), extra="t.shutdown(wait=False)")
        _rc, out, err = assert_python_ok("-c", script, PYTHONPATH=os.pathsep.join(sys.path))
        self.assertFalse(err)  # type: ignore[attr-defined]
        self.assertEqual(out.strip(), b"apple")  # type: ignore[attr-defined]

    def test_submit_after_interpreter_shutdown(self) -> None:
        script = _SUBMIT_AT_EXIT.format(kind=self.kind_config.kind, options=self._script_options())
        _rc, out, err = assert_python_ok("-c", script, PYTHONPATH=os.pathsep.join(sys.path))
        # the stdlib says "RuntimeError: cannot schedule new futures after interpreter shutdown";
        # unifex raises ExecutorClosedError (a RuntimeError) saying the same
        self.assertIn("cannot schedule new futures after interpreter shutdown", err.decode())  # type: ignore[attr-defined]
        self.assertIn("ExecutorClosedError", err.decode())  # type: ignore[attr-defined]
        self.assertEqual(out.strip(), b"runtime-error")  # type: ignore[attr-defined]


def _executor_classes(config: KindConfig) -> dict[str, type]:
    tag = "".join(part.capitalize() for part in config.id.replace("-", "_").split("_"))
    base_attrs = {"executor_type": _factory(config), "kind_config": config}
    made: dict[str, type] = {}
    tpe = cfs.ThreadPoolExecutorTest
    in_process = "processes" not in config.capabilities
    # ThreadPoolExecutorTest's own tests that need no internals; they share a
    # closure's list or threading.Event with the caller, so in-process kinds only
    extra_executor_tests = {
        "test_map_submits_without_iteration": tpe.test_map_submits_without_iteration,
        "test_executor_map_current_future_cancel": tpe.test_executor_map_current_future_cancel,
    } if in_process else {}
    extra_wait_tests = {"test_pending_calls_race": cfs.ThreadPoolWaitTests.test_pending_calls_race} if in_process else {}
    specs: list[tuple[str, tuple[type, ...], dict[str, Any]]] = [
        ("ExecutorTest", (cfs.ExecutorTest,), extra_executor_tests),
        ("WaitTests", (cfs.WaitTests,), extra_wait_tests),
        ("AsCompletedTests", (cfs.AsCompletedTests,), {}),
        ("ShutdownTest", (UnifexShutdownMixin, cfs.ExecutorShutdownTest), {}),
    ]
    for name, bases, extra in specs:
        cls = type(f"Test{tag}{name}", (*bases, cfs.ExecutorMixin, cfs.BaseTestCase), {**base_attrs, **extra})
        made[cls.__name__] = _mark(config.kind, cls)
    return made


for _config in one_per_kind(configurations()):
    globals().update(_executor_classes(_config))


class TestUnifexFuture(ufs.FutureTests):  # type: ignore[name-defined,misc]
    """The stdlib's ``FutureTests`` with ``Future`` = ``unifex.Future``."""

    def setUp(self) -> None:
        super().setUp()
        self._handler = _StderrNow()
        logging.getLogger("unifex").addHandler(self._handler)

    def tearDown(self) -> None:
        logging.getLogger("unifex").removeHandler(self._handler)
        super().tearDown()


_mark("*", TestUnifexFuture)


class TestUnifexFutureAsCompleted(ufs.AsCompletedTests, ufs.ThreadPoolMixin, ufs.BaseTestCase):  # type: ignore[name-defined,misc]
    """``as_completed`` over ``unifex.Future`` objects made directly (its
    free-reference test), on a ``thread`` executor."""

    executor_type = _factory(KindConfig("thread", "thread", {}, frozenset()))


class TestUnifexFutureWait(ufs.WaitTests, ufs.ThreadPoolMixin, ufs.BaseTestCase):  # type: ignore[name-defined,misc]
    """``concurrent.futures.wait`` over ``unifex.Future`` objects in every state."""

    executor_type = _factory(KindConfig("thread", "thread", {}, frozenset()))


