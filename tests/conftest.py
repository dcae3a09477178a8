"""Every test runs under the leak check of the unifex pytest plugin."""

from __future__ import annotations

import gc

import pytest


def pytest_collection_finish(session: pytest.Session) -> None:
    """What collection built (modules, test items, their parameters: some
    170,000 objects) lives for the whole session. Moving it out of the cyclic
    collector's reach makes each full ``gc.collect()`` cost microseconds rather
    than 0.2 s; CPython's suites call several per test, and the collector's own
    full passes stop rescanning it too."""
    gc.freeze()


@pytest.fixture(autouse=True)
def _no_leaks(unifex_leak_check: None) -> None:
    """Fail any test that leaves a thread, a child process or a semaphore."""
