"""SPEC 2: functions, lambdas and closures defined anywhere run on every
backend (cloudpickle carries what plain pickle cannot)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

# a start method can change this clause: run it under each (see unifex.testing)
pytestmark = pytest.mark.worker_start


def module_level(x: int) -> int:
    return x + 100


def test_lambda(ex: Any) -> None:
    assert ex.submit(lambda x: x * 3, 5).result(timeout=30) == 15


def test_closure(ex: Any) -> None:
    offset = 42

    def add_offset(x: int) -> int:
        return x + offset

    assert ex.submit(add_offset, 1).result(timeout=30) == 43
    assert list(ex.map(add_offset, range(3))) == [42, 43, 44]


def test_function_defined_in_a_test_module(ex: Any) -> None:
    assert ex.submit(module_level, 1).result(timeout=30) == 101


def test_nested_lambda_capturing_a_lambda(ex: Any) -> None:
    inner: Callable[[int], int] = lambda y: y * 2  # noqa: E731
    assert ex.apply_async(lambda z: inner(z) + 1, (4,)).result(timeout=30) == 9


def test_function_defined_in_main(ex: Any) -> None:
    namespace: dict[str, Any] = {"__name__": "__main__"}
    exec("def from_main(x):\n    return ('main', x)\n", namespace)
    assert ex.submit(namespace["from_main"], 7).result(timeout=30) == ("main", 7)
