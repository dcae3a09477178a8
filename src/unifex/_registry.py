"""Which kinds exist and how to make them: built-in kinds as ``module:attr``
strings imported on first use, kinds added at run time with
:func:`register_backend`, and third-party kinds from the ``unifex.backends``
entry-point group."""

from __future__ import annotations

import importlib
import importlib.util
import threading
from collections.abc import Callable
from typing import Any

from ._errors import UnknownBackendError

__all__ = ["backends", "get_factory", "register_backend"]

#: kind -> (factory as "module:attr", the package it needs, the extra that installs it)
BUILTIN: dict[str, tuple[str, str | None, str | None]] = {
    "thread": ("unifex._backends.thread:ThreadExecutor", None, None),
    "process": ("unifex._backends.process.executor:ProcessExecutor", None, None),
    "pool": ("unifex._backends.pool:ElasticPoolExecutor", None, None),
    "gevent": ("unifex._backends.gevent:GeventExecutor", "gevent", "unifex[gevent]"),
    "greenlet": ("unifex._backends.greenlet:GreenletExecutor", "greenlet", "unifex[gevent]"),
    "serial": ("unifex._backends.serial:SerialExecutor", None, None),
    "dask": ("unifex._backends.dask.client:DaskExecutor", "distributed", "unifex[dask]"),
}

ENTRY_POINT_GROUP = "unifex.backends"

_lock = threading.Lock()
_registered: dict[str, Callable[..., Any]] = {}
_entry_points: dict[str, Any] | None = None


def _installed(package: str | None) -> bool:
    if package is None:
        return True
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError):
        return False


def _builtin_present(kind: str) -> bool:
    """A built-in kind whose backend module ships in this installation."""
    module = BUILTIN[kind][0].partition(":")[0]
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def _load_entry_points() -> dict[str, Any]:
    global _entry_points
    if _entry_points is None:
        from importlib.metadata import entry_points

        _entry_points = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    return _entry_points


def register_backend(name: str, factory: Callable[..., Any]) -> None:
    """Add a kind at run time: ``factory(size=None, **options)`` returns an
    Executor. A name already taken by a built-in kind cannot be replaced."""
    if not isinstance(name, str) or not name:
        raise ValueError(f"a backend name must be a non-empty str, not {name!r}")
    if not callable(factory):
        raise TypeError(f"factory for backend {name!r} must be callable, not {factory!r}")
    if name in BUILTIN:
        raise ValueError(f"{name!r} is a built-in kind and cannot be replaced; register under another name")
    with _lock:
        _registered[name] = factory


def unregister_backend(name: str) -> None:
    """Remove a kind added with :func:`register_backend` (for tests)."""
    with _lock:
        _registered.pop(name, None)


def backends() -> dict[str, bool]:
    """Every registered kind mapped to whether it is usable here (its optional
    dependency is installed)."""
    result = {kind: _builtin_present(kind) and _installed(pkg) for kind, (_, pkg, _extra) in BUILTIN.items()}
    for name in _load_entry_points():
        result.setdefault(name, True)
    with _lock:
        for name in _registered:
            result[name] = True
    return result


def _unknown(kind: object) -> UnknownBackendError:
    kinds = ", ".join(sorted(backends()))
    return UnknownBackendError(f"unknown backend {kind!r}; available: {kinds}")


def get_factory(kind: str) -> Callable[..., Any]:
    """The factory of ``kind``, importing its module on first use."""
    if not isinstance(kind, str):
        raise _unknown(kind)
    with _lock:
        factory = _registered.get(kind)
    if factory is not None:
        return factory
    if kind in BUILTIN:
        target, package, extra = BUILTIN[kind]
        if not _installed(package):
            raise UnknownBackendError(
                f"backend {kind!r} needs the package {package!r}, which is not installed; install it with: pip install '{extra}'"
            )
        if not _builtin_present(kind):
            raise UnknownBackendError(f"backend {kind!r} is not available in this installation of unifex ({target} is missing)")
        module_name, _, attr = target.partition(":")
        module = importlib.import_module(module_name)
        return getattr(module, attr)  # type: ignore[no-any-return]
    ep = _load_entry_points().get(kind)
    if ep is not None:
        factory = ep.load()
        with _lock:
            _registered.setdefault(kind, factory)
        return factory  # type: ignore[no-any-return]
    raise _unknown(kind)
