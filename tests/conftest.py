"""Every test runs under the leak check of the unifex pytest plugin."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _no_leaks(unifex_leak_check: None) -> None:
    """Fail any test that leaves a thread, a child process or a semaphore."""
