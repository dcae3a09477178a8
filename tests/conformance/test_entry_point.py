"""SPEC 1: ``unifex.executor``, ``backends()``, ``register_backend`` and the
argument checks."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from typing import Any

import pytest

import unifex
from unifex._registry import BUILTIN, unregister_backend
from unifex.testing import KindConfig

ALL_KINDS = ("thread", "process", "pool", "gevent", "greenlet", "serial", "dask")


def test_unknown_kind_lists_the_available_kinds() -> None:
    with pytest.raises(unifex.UnknownBackendError) as info:
        unifex.executor("thred")
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert "'thred'" in message
    for kind in ("thread", "process", "pool", "serial"):
        assert kind in message


@pytest.mark.parametrize("size", [0, -1, 1.5, "2", True])
def test_bad_size_raises_value_error_naming_it(kind_config: KindConfig, size: Any) -> None:
    with pytest.raises(ValueError) as info:
        unifex.executor(kind_config.kind, size=size, **kind_config.options)
    assert "size" in str(info.value)
    assert repr(size) in str(info.value)


def test_unknown_option_raises_type_error_naming_option_and_kind(kind_config: KindConfig) -> None:
    with pytest.raises(TypeError) as info:
        unifex.executor(kind_config.kind, size=1, no_such_option=3)
    assert "no_such_option" in str(info.value)
    assert kind_config.kind in str(info.value)


def test_backends_maps_every_builtin_kind_to_usable() -> None:
    kinds = unifex.backends()
    assert set(ALL_KINDS) <= set(kinds)
    assert all(isinstance(v, bool) for v in kinds.values())
    for kind in ("thread", "process", "pool", "serial"):
        assert kinds[kind] is True


def test_missing_optional_dependency_names_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    # A None entry in sys.modules is how Python itself says "this module cannot be imported".
    monkeypatch.setitem(sys.modules, "distributed", None)
    assert unifex.backends()["dask"] is False
    with pytest.raises(unifex.UnknownBackendError) as info:
        unifex.executor("dask")
    assert "distributed" in str(info.value)
    assert "unifex[dask]" in str(info.value)


def test_register_backend_adds_a_kind() -> None:
    made: list[Any] = []

    def factory(size: int | None = None, **options: Any) -> Any:
        ex = unifex.executor("thread", size=size, **options)
        made.append(ex)
        return ex

    unifex.register_backend("conformance-custom", factory)
    try:
        assert unifex.backends()["conformance-custom"] is True
        with unifex.executor("conformance-custom", size=2) as ex:
            assert ex.submit(pow, 2, 5).result(timeout=10) == 32
        assert made
    finally:
        unregister_backend("conformance-custom")
    assert "conformance-custom" not in unifex.backends()


def test_register_backend_refuses_builtin_names_and_non_callables() -> None:
    with pytest.raises(ValueError):
        unifex.register_backend("thread", lambda size=None: None)
    with pytest.raises(TypeError):
        unifex.register_backend("x-not-callable", 3)  # type: ignore[arg-type]


def _run(code: str, *paths: str) -> str:
    env_path = ":".join(paths)
    cmd = [sys.executable, "-c", textwrap.dedent(code)]
    env = None
    if env_path:
        import os

        env = {**os.environ, "PYTHONPATH": env_path + ":" + os.environ.get("PYTHONPATH", "")}
    out = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, env=env)
    assert out.returncode == 0, out.stderr
    return out.stdout


def test_backend_modules_are_imported_only_on_first_use() -> None:
    out = _run(
        """
        import sys, unifex
        heavy = [m for m in sys.modules if m.startswith("unifex._backends.") or m.split(".")[0] in ("gevent", "distributed", "dask")]
        print("before", sorted(heavy))
        with unifex.executor("thread", size=1) as ex:
            ex.submit(int).result(timeout=10)
        print("thread", "unifex._backends.thread" in sys.modules, "unifex._backends.process" in sys.modules)
        """
    )
    assert "before []" in out
    assert "thread True False" in out


def test_entry_point_group_adds_third_party_kinds(tmp_path: Any) -> None:
    dist = tmp_path / "thirdparty_backend-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-backend\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[unifex.backends]\nthirdparty = thirdparty_backend:make\n")
    (tmp_path / "thirdparty_backend.py").write_text(
        "import unifex\ndef make(size=None, **options):\n    return unifex.executor('serial', size=size)\n"
    )
    out = _run(
        """
        import unifex
        print(unifex.backends().get("thirdparty"))
        with unifex.executor("thirdparty") as ex:
            print(ex.submit(pow, 3, 2).result())
        """,
        str(tmp_path),
    )
    assert out.split() == ["True", "9"]


def test_builtin_table_covers_the_contract() -> None:
    assert set(BUILTIN) == set(ALL_KINDS)
