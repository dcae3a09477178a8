"""Shared set-up of the pytest-benchmark suite (``python3 -m pytest benchmarks/ --benchmark-only``).

Each unifex case sits in the same benchmark ``group`` as the raw library it
wraps, so pytest-benchmark's table shows them side by side. Nothing here is
autouse: every benchmark file of the suite stays independent.
"""

from __future__ import annotations

from typing import Any

import pytest

import unifex
from unifex import bench as _bench


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Saved runs (``--benchmark-autosave``) record what unifex measured them with."""
    machine_info["unifex"] = {
        "version": unifex.__version__,
        "usable_kinds": [kind for kind, ok in unifex.backends().items() if ok],
        "libraries": _bench.machine_info()["libraries"],
    }


@pytest.fixture(scope="session")
def bench_quick() -> bool:
    """Whether this run uses the small counts (``UNIFEX_BENCH_QUICK=1``)."""
    return _bench.env_quick()
