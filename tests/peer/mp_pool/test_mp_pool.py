"""CPython 3.11's own ``multiprocessing.Pool`` tests (``_TestPool``,
``_TestPoolWorkerErrors``, ``_TestPoolWorkerLifetime``, vendored in
``cpython_pool_tests.py``; provenance in ``README.md``), driven against every
unifex kind with a unifex executor in the place of ``Pool(...)``.

For each test configuration of each kind the vendored file is loaded as its own
module, whose ``multiprocessing`` is a stand-in: ``Pool(processes, initializer,
initargs, maxtasksperchild)`` is ``unifex.executor(kind, processes, ...)``
(``maxtasksperchild`` spelled ``max_tasks_per_worker``); every other name is the
real ``multiprocessing``'s. The suite's ``TYPE`` is ``"processes"`` for kinds that
run tasks in other processes and ``"threads"`` otherwise, as CPython runs the
same classes on ``multiprocessing.Pool`` and ``multiprocessing.dummy.Pool``;
``ALLOWED_TYPES`` is honoured. Plumbing only, never an assertion:

* ``_TestPool`` makes its pool of 4 per test instead of per class, so the leak
  check sees each test leave nothing behind;
* on in-process kinds the suite's ``time.sleep`` is a sleep that the test's
  teardown cuts short (``unifex.sleep`` inside cooperative tasks): a thread
  cannot be killed, so the 300 s sleeps ``test_terminate`` leaves running after
  ``terminate()`` would outlive the test (``multiprocessing.dummy`` leaves them
  too);
* ``test_worker_finalization_via_atexit_handler_of_multiprocessing`` starts an
  interpreter with ``from multiprocessing import Pool``; it is re-spelled with
  ``unifex.executor(kind, 1)``, asserting what the original asserts.

Tests that read ``multiprocessing.Pool`` internals, or whose difference is a
documented decision of the contract, are ``xfail(strict=True)`` with the reason
(listed in ``docs/ecosystem.md``, "multiprocessing.Pool tests").
"""

from __future__ import annotations

import importlib
import sys
import threading
import time
import types
import unittest
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

import pytest

import unifex
from unifex import _wait
from unifex.testing import KindConfig, configurations, one_per_kind

try:
    import test.support  # type: ignore[import-not-found]  # noqa: F401 - CPython's test package: the suite needs it
    from test.support.script_helper import assert_python_ok  # type: ignore[import-not-found]
except ImportError:  # pragma: no cover - a Python without its test package
    pytest.skip("CPython's test package (test.support) is not installed with this Python", allow_module_level=True)

VENDORED = Path(__file__).with_name("cpython_pool_tests.py")
CLASSES = ("_TestPool", "_TestPoolWorkerErrors", "_TestPoolWorkerLifetime")

# -- what differs, and why (mirrored in docs/ecosystem.md) ------------------------------

INTERNALS = "reads multiprocessing.Pool internals (Pool._pool, Pool._repopulate_pool)"
LAZY_MAP = (
    "contract (Executor API, map): map follows concurrent.futures, a lazy iterator over *iterables; "
    "pool.map(f, xs) is not a list (list(ex.map(f, xs)) is Pool.map), its errors come from iterating, "
    "and pool.map(f, xs, 1) passes 1 as a second iterable"
)
CLOSED = (
    "contract (Errors): work after close raises ExecutorClosedError, a RuntimeError, not ValueError; "
    "entering a closed executor's with-block does not raise"
)
REMOTE_TB = (
    "contract (Errors): a task's remote traceback (its __cause__) is unifex's RemoteTraceback, whose text is .text, "
    "not multiprocessing.pool.RemoteTraceback with .tb"
)
ENCODING = "contract (Errors): a result that will not pickle raises SerializationError, not multiprocessing.pool.MaybeEncodingError"

#: test name -> reason, on every kind
XFAIL: dict[str, str] = {
    "test_make_pool": INTERNALS,
    "test_pool_worker_lifetime": INTERNALS,
    "test_resource_warning": "an executor collected unclosed gives no ResourceWarning (its threads end); "
    "the test also fakes a running pool through Pool._state",
    "test_map": LAZY_MAP,
    "test_empty_iterable": LAZY_MAP,
    "test_map_handle_iterable_exception": LAZY_MAP,
    "test_map_no_failfast": LAZY_MAP,
    "test_enter": CLOSED,
}

#: (TYPE, test name) -> reason, on the kinds of that TYPE
XFAIL_BY_TYPE: dict[tuple[str, str], str] = {
    ("processes", "test_context"): CLOSED,
    ("processes", "test_map_unplicklable"): LAZY_MAP,
    ("processes", "test_traceback"): REMOTE_TB,
    ("processes", "test_unpickleable_result"): ENCODING,
}

COOPERATIVE_BLOCK = (
    "contract (kinds: gevent and greenlet are cooperative): the task blocks in a threading.Event.wait, which does "
    "not yield, so the whole thread, the caller's get(timeout=0.1) included, waits the task's 30 s out and get() "
    "returns its result; not run, to spare the 30 s"
)
SERIAL_INLINE = "contract (kinds: serial runs each task in the caller, at submission): "

#: (kind, test name) -> (reason, run): differences of one kind
XFAIL_BY_KIND: dict[tuple[str, str], tuple[str, bool]] = {
    ("gevent", "test_async_timeout"): (COOPERATIVE_BLOCK, False),
    ("greenlet", "test_async_timeout"): (COOPERATIVE_BLOCK, False),
    ("serial", "test_async_timeout"): (
        SERIAL_INLINE + "apply_async itself runs the 30 s task, so get(timeout=0.1) finds it done; not run, to spare the 30 s",
        False,
    ),
    ("serial", "test_terminate"): (
        SERIAL_INLINE + "map_async itself runs the 10 000 sleeps of 300 s, so terminate() is never reached; not run",
        False,
    ),
}

#: (TYPE, test name) -> reason: fails or passes by timing, so not strict
XFAIL_LOOSE: dict[tuple[str, str], str] = {
    ("processes", "test_release_task_refs"): LAZY_MAP
    + "; the lazy map is dropped unread, so whether its tasks have let go of the objects 0.1 s later is timing",
}


def _type(config: KindConfig) -> str:
    return "processes" if config.has("processes") else "threads"


class _Released:
    """A ``time`` stand-in for in-process kinds: ``sleep`` returns early once the
    test is over, so a task ``terminate()`` could not stop does not outlive it."""

    monotonic = staticmethod(time.monotonic)

    def __init__(self) -> None:
        self.over = threading.Event()

    def sleep(self, seconds: float) -> None:
        if _wait.current() is not _wait.THREAD:
            unifex.sleep(seconds)
        else:
            self.over.wait(seconds)


def _pool_factory(config: KindConfig) -> Callable[..., Any]:
    def Pool(
        processes: int | None = None,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        maxtasksperchild: int | None = None,
    ) -> Any:
        options = dict(config.options)
        if initializer is not None:
            options.update(initializer=initializer, initargs=initargs)
        if maxtasksperchild is not None:
            options["max_tasks_per_worker"] = maxtasksperchild
        ex = unifex.executor(config.kind, processes, **options)
        _Current.made.append(ex)
        return ex

    return Pool


class _Current:
    """Which configuration's test is running: the one vendored module serves
    them all (its functions must be importable by name in worker processes)."""

    config: KindConfig | None = None
    released: _Released | None = None
    made: ClassVar[list[Any]] = []  # every pool the running test made, ended at its teardown


def _stand_in() -> types.ModuleType:
    import multiprocessing

    def Pool(*args: Any, **kwargs: Any) -> Any:
        assert _Current.config is not None, "a Pool made outside a test"
        return _pool_factory(_Current.config)(*args, **kwargs)

    stand_in = types.ModuleType("multiprocessing")
    stand_in.__dict__.update({k: v for k, v in vars(multiprocessing).items() if not k.startswith("__")})
    stand_in.Pool = Pool  # type: ignore[attr-defined]
    return stand_in


class _Time:
    """The suite's ``time``: the real one, but on in-process kinds a ``sleep``
    that the test's teardown cuts short."""

    monotonic = staticmethod(time.monotonic)

    @staticmethod
    def sleep(seconds: float) -> None:
        released = _Current.released
        if released is None:
            time.sleep(seconds)
        else:
            released.sleep(seconds)


def _load() -> types.ModuleType:
    # imported by name (the directory is on sys.path, as pytest's rootdir-less
    # layout puts it and as worker processes inherit it), not by file location
    if str(VENDORED.parent) not in sys.path:
        sys.path.insert(0, str(VENDORED.parent))
    module = importlib.import_module(VENDORED.stem)
    module.multiprocessing = _stand_in()  # type: ignore[attr-defined]
    module.time = _Time  # type: ignore[attr-defined]
    return module


module = _load()


def _xfail(func: Callable[..., Any], reason: str, strict: bool = True, run: bool = True) -> Callable[..., Any]:
    def test(self: Any) -> None:
        func(self)

    test.__name__ = func.__name__
    test.__doc__ = func.__doc__
    marked: Callable[..., Any] = pytest.mark.xfail(strict=strict, reason=reason, run=run)(test)
    return marked


def _make_classes(config: KindConfig) -> dict[str, type]:
    kind_type = _type(config)
    pool = _pool_factory(config)
    released = _Released() if kind_type == "threads" else None

    class Mixin:
        TYPE = kind_type
        Pool = staticmethod(pool)

        @classmethod
        def setUpClass(cls) -> None:  # the pool is made per test: see setUp
            pass

        @classmethod
        def tearDownClass(cls) -> None:
            pass

        def setUp(self) -> None:
            _Current.config, _Current.released = config, released
            if released is not None:
                released.over.clear()
            if isinstance(self, module._TestPool):
                type(self).pool = self.Pool(4)  # type: ignore[attr-defined]

        def tearDown(self) -> None:
            if released is not None:
                released.over.set()
            # end every pool the test made, also one an assertion left open
            setattr(type(self), "pool", None)  # noqa: B010 - set by setUp on the made class
            while _Current.made:
                ex = _Current.made.pop()
                ex.terminate()
                ex.join()
            _Current.config = _Current.released = None

    def test_worker_finalization_via_atexit_handler_of_multiprocessing(self: Any) -> None:
        # the original's program, with its one Pool line spelled for this kind
        cmd = f"""if 1:
            import unifex
            problem = None
            class A:
                def __init__(self):
                    self.pool = unifex.executor({config.kind!r}, 1, **{config.options!r})
            def test():
                global problem
                problem = A()
                list(problem.pool.map(float, tuple(range(10))))
            if __name__ == "__main__":
                test()
        """
        rc, _out, _err = assert_python_ok("-c", cmd)
        self.assertEqual(rc, 0)

    made: dict[str, type] = {}
    for base_name in CLASSES:
        base = getattr(module, base_name)
        if kind_type not in base.ALLOWED_TYPES:
            continue
        namespace: dict[str, Any] = {"__module__": __name__}
        if base_name == "_TestPoolWorkerLifetime":
            namespace[test_worker_finalization_via_atexit_handler_of_multiprocessing.__name__] = (
                test_worker_finalization_via_atexit_handler_of_multiprocessing
            )
        for attr in dir(base):
            if not attr.startswith("test_"):
                continue
            reason = XFAIL.get(attr) or XFAIL_BY_TYPE.get((kind_type, attr))
            if (config.kind, attr) in XFAIL_BY_KIND:
                by_kind, run = XFAIL_BY_KIND[(config.kind, attr)]
                namespace[attr] = _xfail(getattr(base, attr), by_kind, run=run)
            elif reason is not None:
                namespace[attr] = _xfail(namespace.get(attr, getattr(base, attr)), reason)
            elif (kind_type, attr) in XFAIL_LOOSE:
                namespace[attr] = _xfail(getattr(base, attr), XFAIL_LOOSE[(kind_type, attr)], strict=False)
        cls_name = f"Test{base_name[5:]}_{config.id.replace('-', '_')}"
        made[cls_name] = type(cls_name, (Mixin, base, unittest.TestCase), namespace)
    return made


#: kinds the suite is not driven on, and why
NOT_DRIVEN = {
    "dask": "the vendored tests' functions reach a worker by module name, and the shared dask test cluster's workers "
    "cannot import the vendored module (its directory is not on their path); pickled by value, they drag in this driver",
}

_not_driven: list[str] = []
for _config in one_per_kind(configurations()):
    if _config.kind in NOT_DRIVEN:
        _not_driven.append(_config.kind)
    else:
        globals().update(_make_classes(_config))
del _config


@pytest.mark.parametrize("kind", sorted(set(_not_driven)))
def test_kinds_not_driven(kind: str) -> None:
    pytest.skip(f"CPython's Pool tests are not driven on {kind!r}: {NOT_DRIVEN[kind]}")
