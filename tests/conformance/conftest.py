"""Run from the wheel (``pytest --pyargs unifex.testing.conformance``), the
suite brings its own leak check; in this repository ``tests/conftest.py``
already applies it."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _conformance_no_leaks(unifex_leak_check: None) -> None:
    """Fail any conformance test that leaves a thread, a process or a semaphore."""
