"""The ``greenlet`` kind: a deterministic cooperative scheduler on raw greenlet
switches in the thread that created the executor (the data flow is drawn in
:mod:`.loop`).

* ``loop.py``: the per-thread scheduler, its clock, waiters and deadlock check;
* ``executor.py``: :class:`GreenletExecutor` (slots, close, terminate);
* ``helpers.py``: the helpers on the scheduler.
"""

from __future__ import annotations

from .executor import GreenletExecutor
from .helpers import (
    GreenletBoundedSemaphore,
    GreenletCondition,
    GreenletEvent,
    GreenletLock,
    GreenletQueue,
    GreenletRLock,
    GreenletSemaphore,
)

__all__ = [
    "GreenletBoundedSemaphore",
    "GreenletCondition",
    "GreenletEvent",
    "GreenletExecutor",
    "GreenletLock",
    "GreenletQueue",
    "GreenletRLock",
    "GreenletSemaphore",
]
