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
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from . import KindConfig, configurations
from .leaks import Snapshot, leaked


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--unifex-kinds", default=None, help="comma-separated kinds for the unifex conformance suite (default: every usable kind)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "requires(*capabilities): run only for kinds that have every capability")
    config.addinivalue_line("markers", "kinds(*names): run only for the kinds named")


def pytest_sessionfinish(session: pytest.Session) -> None:
    # the dask kind's shared test cluster, if a test configuration started it
    import sys

    shared = sys.modules.get("unifex.testing.dask_cluster")
    if shared is not None:
        shared.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kind_config" not in metafunc.fixturenames:
        return
    configs = configurations(metafunc.config.getoption("--unifex-kinds"))
    for mark in metafunc.definition.iter_markers("requires"):
        configs = [c for c in configs if c.has(*mark.args)]
    for mark in metafunc.definition.iter_markers("kinds"):
        configs = [c for c in configs if c.kind in mark.args]
    metafunc.parametrize("kind_config", configs, ids=[c.id for c in configs])


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
def ex(make_executor: Callable[..., Any]) -> Any:
    return make_executor()


@pytest.fixture
def unifex_leak_check() -> Iterator[None]:
    before = Snapshot()
    yield
    problems = leaked(before)
    if problems:
        pytest.fail("the test leaked: " + "; ".join(problems), pytrace=False)
