"""SPEC 4: ``dict(...)``: a ``MutableMapping`` shared by the executor's workers."""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

import pytest

from unifex.testing import tasks

# a start method can change this clause: run it under each (see unifex.testing)
pytestmark = pytest.mark.worker_start


def test_mutable_mapping_interface(ex: Any) -> None:
    d = ex.dict({"a": 1}, b=2)
    assert isinstance(d, MutableMapping)
    assert d["a"] == 1 and d["b"] == 2
    d["c"] = [3]
    assert len(d) == 3
    assert sorted(d) == ["a", "b", "c"]
    assert sorted(d.keys()) == ["a", "b", "c"]
    assert sorted(d.items()) == [("a", 1), ("b", 2), ("c", [3])]
    assert "a" in d and "z" not in d
    assert d.get("z", 9) == 9
    assert d.pop("a") == 1
    assert d.setdefault("e", 5) == 5
    d.update({"f": 6})
    del d["b"]
    with pytest.raises(KeyError):
        d["b"]
    assert dict(d.items()) == {"c": [3], "e": 5, "f": 6}


def test_workers_fill_the_dict(ex: Any) -> None:
    d = ex.dict()
    futures = [ex.submit(tasks.dict_put, d, i, i * i) for i in range(10)]
    assert sorted(f.result(timeout=30) for f in futures) == list(range(10))
    assert dict(d.items()) == {i: i * i for i in range(10)}


def test_locked_increments_are_not_lost(make_executor: Any) -> None:
    ex = make_executor(size=3)
    d, lock = ex.dict(n=0), ex.Lock()
    for f in [ex.submit(tasks.incr_locked, lock, d, "n", 20) for _ in range(3)]:
        f.result(timeout=60)
    assert d["n"] == 60
