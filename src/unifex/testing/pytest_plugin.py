"""pytest plugin (entry point ``pytest11``) running the conformance suite over
every registered kind.

* ``kind_config``: parametrised over :func:`unifex.testing.configurations`,
  narrowed by ``@pytest.mark.requires(capability, ...)`` and
  ``@pytest.mark.kinds(name, ...)``, and by ``--unifex-kinds thread,process``.
* ``make_executor(size=4, **options)``: an executor of that configuration,
  terminated at teardown if the test left it open.
* ``ex``: ``make_executor()``.
* ``unifex_leak_check``: fails a test that leaves a thread, a child process or
  a semaphore behind; a project makes it autouse in its ``conftest.py``.
* ``@pytest.mark.explore(schedules=1000, strategy="portfolio", **options)``: run
  a test taking ``ex`` under many schedules of the ``greenlet`` kind
  (:func:`unifex.testing.explore`); ``--unifex-schedules N`` overrides the
  count, ``--unifex-replay TOKEN`` replays one schedule instead. Given either
  option, unmarked tests taking ``ex`` are explored too in the plain
  ``greenlet`` configuration (with its real clock).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from . import KindConfig, configurations
from .leaks import Snapshot, leaked


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--unifex-kinds", default=None, help="comma-separated kinds for the unifex conformance suite (default: every usable kind)")
    parser.addoption("--unifex-schedules", type=int, default=None, help="schedules per @pytest.mark.explore test (overrides the marker)")
    parser.addoption("--unifex-replay", default=None, metavar="TOKEN", help="replay this schedule in the selected @pytest.mark.explore tests")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(*capabilities): run only for kinds that have every capability")
    config.addinivalue_line("markers", "kinds(*names): run only for the kinds named")
    config.addinivalue_line(
        "markers", "worker_start: a clause a process start method can change; run under every start method, not only the default"
    )
    config.addinivalue_line(
        "markers", "explore(schedules=1000, strategy='portfolio', **options): run the test (taking ex) under many greenlet schedules"
    )


def pytest_sessionfinish(session: pytest.Session) -> None:
    # the dask kind's shared test cluster, if a test configuration started it
    import sys

    shared = sys.modules.get("unifex.testing.dask_cluster")
    if shared is not None:
        shared.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kind_config" not in metafunc.fixturenames:
        return
    if metafunc.definition.get_closest_marker("explore") is not None:
        # explored tests run on the greenlet kind only; explore makes ex per schedule
        caps = frozenset(getattr(_greenlet_factory(), "capabilities", frozenset()))
        metafunc.parametrize("kind_config", [KindConfig("greenlet-explore", "greenlet", {"clock": "virtual"}, caps)], ids=["greenlet-explore"])
        return
    configs = configurations(metafunc.config.getoption("--unifex-kinds"))
    for mark in metafunc.definition.iter_markers("requires"):
        configs = [c for c in configs if c.has(*mark.args)]
    for mark in metafunc.definition.iter_markers("kinds"):
        configs = [c for c in configs if c.kind in mark.args]
    configs = [c for c in configs if c.only is None or metafunc.definition.get_closest_marker(c.only) is not None]
    metafunc.parametrize("kind_config", configs, ids=[c.id for c in configs])


@pytest.fixture(scope="session", autouse=True)
def _unifex_planned_clusters() -> None:
    """Start the test infrastructure that collection only planned (the dask
    kind's shared cluster), once per session, before any test's leak snapshot."""
    import sys

    shared = sys.modules.get("unifex.testing.dask_cluster")
    if shared is not None:
        shared.start_planned()


@pytest.fixture
def make_executor(kind_config: KindConfig) -> Iterator[Callable[..., Any]]:
    import unifex

    made: list[Any] = []

    def make(size: int | None = 4, **options: Any) -> Any:
        ex = unifex.executor(kind_config.kind, size=size, **{**kind_config.options, **options})
        made.append(ex)
        return ex

    yield make
    for ex in made:
        ex.terminate()
        ex.close(wait=False)


@pytest.fixture
def ex(request: pytest.FixtureRequest, make_executor: Callable[..., Any]) -> Any:
    if _explored(request.node) is not None:
        return None  # pytest_pyfunc_call passes a fresh executor per schedule
    return make_executor()


def _greenlet_factory() -> Any:
    from .._registry import get_factory

    return get_factory("greenlet")


def _explored(item: Any) -> dict[str, Any] | None:
    """The explore() options for a test run under explore, else None: a test
    marked ``explore``, or, given ``--unifex-schedules``/``--unifex-replay``, a
    test taking ``ex`` in the plain (unseeded) greenlet configuration."""
    mark = item.get_closest_marker("explore")
    config = item.config
    schedules = config.getoption("--unifex-schedules")
    if mark is not None:
        options = dict(mark.kwargs)
        if mark.args:
            options["schedules"] = mark.args[0]
    else:
        if schedules is None and not config.getoption("--unifex-replay"):
            return None
        kind_config = getattr(getattr(item, "callspec", None), "params", {}).get("kind_config")
        if "ex" not in getattr(item, "fixturenames", ()) or kind_config is None or kind_config.kind != "greenlet":
            return None
        if kind_config.options.get("seed") is not None:
            return None  # the seeded variant keeps its own order
        options = {"clock": kind_config.options.get("clock", "real")}
    if schedules is not None:
        options["schedules"] = schedules
    return options


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    options = _explored(pyfuncitem)
    if options is None:
        return None
    from .explore import explore, replay

    names = pyfuncitem._fixtureinfo.argnames
    if "ex" not in names:
        raise pytest.UsageError(f"{pyfuncitem.nodeid}: @pytest.mark.explore needs a test that takes the 'ex' fixture")
    args = {name: pyfuncitem.funcargs[name] for name in names}

    def test(ex: Any) -> None:
        pyfuncitem.obj(**{**args, "ex": ex})

    token = pyfuncitem.config.getoption("--unifex-replay")
    if token:
        replay(test, token)
        return True
    explore(test, **options)
    return True


@pytest.fixture
def unifex_leak_check() -> Iterator[None]:
    before = Snapshot()
    yield
    problems = leaked(before)
    if problems:
        pytest.fail("the test leaked: " + "; ".join(problems), pytrace=False)
