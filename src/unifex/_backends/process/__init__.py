"""The ``process`` kind: tasks run in worker processes the executor owns, one
task per worker at a time, so a crash, a timeout or ``terminate()`` is blamed on
and confined to exactly one task.

Split by the process each part runs in (the data flow is drawn in
``executor.py``):

* ``executor.py``: the parent side's front, what submitting and pickling do;
* ``dispatcher.py``: the parent's dispatcher thread, which owns the workers;
* ``callbacks.py``: the parent thread that runs done-callbacks;
* ``worker.py``: the worker's main loop, every line of it runs in the child;
* ``wire.py``: the messages both sides exchange and how they are pickled;
* ``helpers.py``: Lock, RLock, Event, Semaphore, Condition, Queue across processes;
* ``dict_server.py``: the shared dict and the parent thread that serves it.
"""

from __future__ import annotations

from .executor import KILL_GRACE, ProcessExecutor
from .wire import RemoteTraceback

__all__ = ["KILL_GRACE", "ProcessExecutor", "RemoteTraceback"]
