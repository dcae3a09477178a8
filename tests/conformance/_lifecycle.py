"""Which kinds take the lifecycle options yet: the worker options and the
executor-wide defaults reach ``process``, ``dask`` and ``greenlet`` once their
packages have the worker-loop plumbing."""

from __future__ import annotations

#: kinds whose workers take initializer/initargs/finalizer/max_tasks_per_worker
#: and whose executors take the executor-wide options (retries, max_pending, ...)
LIFECYCLE_KINDS = ("thread", "pool", "serial", "gevent", "greenlet", "process")
