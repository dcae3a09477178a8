"""Task functions of the data tests (importable in workers of every start
method: pytest puts this directory on sys.path)."""

from __future__ import annotations

import mmap
import os
import time
from typing import Any

import numpy as np

from unifex._backends.process import shm

MB = 1 << 20


def describe(value: Any) -> tuple[str, int, bool | None, float]:
    """What a task received: type, size, writable (None when not an array), sum."""
    if isinstance(value, np.ndarray):
        return ("ndarray", value.nbytes, bool(value.flags.writeable), float(value.sum()))
    if isinstance(value, memoryview):
        return ("memoryview", value.nbytes, not value.readonly, float(sum(value.cast("B")[:16])))
    return (type(value).__name__, len(value), None, float(sum(value[:16])))


def total(a: Any) -> float:
    return float(a.sum())


def plus_total(a: Any, x: int) -> float:
    return float(a.sum()) + x


def ones(nbytes: int) -> Any:
    return np.ones(nbytes, dtype=np.uint8)


def echo(value: Any) -> Any:
    return value


def write_into(a: Any) -> float:
    """Writes into its argument: only a copy may be written to."""
    a = a.copy() if not a.flags.writeable else a
    a[0] = 7
    return float(a[0])


def shared_sum(handle: Any) -> float:
    return float(handle.value.sum())


def shared_info(handle: Any) -> tuple[int, bool, int]:
    """id of the cached value in this worker, whether writable, this worker's pid."""
    return (id(handle.value), bool(handle.value.flags.writeable), os.getpid())


def sleep_with(a: Any, seconds: float) -> float:
    time.sleep(seconds)
    return float(a.sum())


def exit_with_array(a: Any) -> None:
    os._exit(3)


def leave_result_segment_then_exit(parent_pid: int, nbytes: int) -> None:
    """What a worker that dies after writing its result to shared memory, but
    before the reply is read, leaves behind: a segment named after it."""
    shm.dumps(np.ones(nbytes, dtype=np.uint8), MB, f"/uxd{parent_pid}-w{os.getpid()}-", None)
    os._exit(4)


_last_mapping: Any = None


def maps_as_last_task(a: Any) -> tuple[bool, float]:
    """Whether ``a`` views the same mapping as the previous call's argument in
    this worker (kept alive here, so an identity cannot be reused), and its sum."""
    global _last_mapping
    mapping = a
    while not isinstance(mapping, mmap.mmap):  # arrays and memoryviews down to the worker's mmap
        mapping = mapping.obj if isinstance(mapping, memoryview) else mapping.base
    same = mapping is _last_mapping
    _last_mapping = mapping
    return same, float(a.sum())


def segments_mapped() -> list[str]:
    """The unifex data segments this process has mapped (``/proc/self/maps``)."""
    with open("/proc/self/maps") as f:
        return sorted({line.split()[-1] for line in f if "/uxd" in line})


def total_and_pid(a: Any) -> tuple[float, int]:
    return float(a.sum()), os.getpid()
