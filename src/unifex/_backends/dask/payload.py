"""Client side: how a call travels to the workers. A function, or a class of a
value, from a module the cluster cannot import (a test module, a script beside
the program) goes by value through cloudpickle; installed packages and unifex
go by name. A ``map`` batch keeps what the client needs to blame a crash on
its item. (Used by :mod:`.client`; runs in the submitting process.)"""

from __future__ import annotations

import contextlib
import functools
import os
import site
import sys
import sysconfig
from collections.abc import Callable
from typing import Any

import cloudpickle

from ..._aio import run_coroutine
from ..._errors import WorkerCrashedError
from ..._remote import call_parts, cloudpickle_dumps, map_parts, which_part
from .worker import WHERE, dpickle

__all__ = ["_Batch", "_dumps_value", "_origin", "_serialize_task"]


def _installed_prefixes() -> tuple[str, ...]:
    paths = sysconfig.get_paths()
    found = {paths["stdlib"], paths["platstdlib"], paths["purelib"], paths["platlib"]}
    with contextlib.suppress(AttributeError):
        found.update(site.getsitepackages())
    return tuple(os.path.join(os.path.realpath(p), "") for p in found if p)


_INSTALLED = _installed_prefixes()
_by_value: dict[str, bool] = {}


def _ship_by_value(fn: Any) -> bool:
    """Whether ``fn`` comes from a module that a cluster cannot import (a test
    module or a script next to the program, not an installed package): such a
    module is registered with cloudpickle to travel by value, so its functions
    and classes reach the workers. Installed packages (and unifex) go by name."""
    module_name = getattr(fn, "__module__", None)
    if not isinstance(module_name, str) or module_name == "__main__" or module_name.partition(".")[0] == "unifex":
        return False
    known = _by_value.get(module_name)
    if known is not None:
        return known
    module = sys.modules.get(module_name)
    path = getattr(module, "__file__", None)
    local = False
    if module is not None and isinstance(path, str):
        real = os.path.realpath(path)
        local = not real.startswith(_INSTALLED) and "site-packages" not in real and "dist-packages" not in real
        if local:
            cloudpickle.register_pickle_by_value(module)
    _by_value[module_name] = local
    return local


class _Batch:
    """What the client keeps of a ``map`` batch in flight, to blame a worker
    crash on the item that caused it (see :meth:`DaskExecutor._batch_crashed`)."""

    __slots__ = ("crash_error", "exact_from", "flat", "fn", "items", "mark", "resumed", "start")

    def __init__(self, fn: Callable[..., Any], items: list[Any], flat: bool, start: int) -> None:
        self.fn = fn
        self.items = items
        self.flat = flat
        self.start = start  # position of the first item in the whole map
        self.exact_from: int | None = None  # items from here on record their index before they run
        self.mark: str | None = None  # where they record it, on the scheduler
        self.crash_error: WorkerCrashedError | None = None  # the re-run of the items before a crash: its error
        self.resumed = False  # its future is already running

    def args(self) -> tuple[Any, ...]:
        return (self.fn, self.items, self.flat, self.exact_from, self.mark)


def _origin(fn: Any, args: tuple[Any, ...] = ()) -> Any:
    """The user's function inside the core's wrappers (an ``async def`` function
    runs through ``run_coroutine``), whose module decides how it travels."""
    if isinstance(fn, functools.partial):
        return _origin(fn.func, fn.args)
    if fn is run_coroutine and args:
        return args[0]
    return fn


def _serialize_task(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any], batch: _Batch | None = None) -> bytes:
    """Pickle ``(fn, args, kwargs)``; on failure say which part would not go."""
    try:
        if _ship_by_value(_origin(batch.fn) if batch is not None else _origin(fn, args)):
            return cloudpickle_dumps((fn, args, kwargs))
        return dpickle.dumps((fn, args, kwargs))
    except Exception as whole:
        parts = [("the function", batch.fn), *map_parts(batch.items, batch.start)] if batch is not None else call_parts(fn, args, kwargs)
        raise which_part(WHERE, parts, whole) from whole


def _dumps_value(value: Any) -> bytes:
    """Pickle one value for the workers; its class travels by value when its
    module is one a cluster cannot import."""
    if _ship_by_value(type(value)):
        return cloudpickle_dumps(value)
    return dpickle.dumps(value)
