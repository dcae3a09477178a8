"""The kinds the lifecycle conformance tests run for: every built-in kind
(a third-party backend opts in by taking the same options)."""

from __future__ import annotations

#: kinds whose workers take initializer/initargs/finalizer/max_tasks_per_worker
#: and whose executors take the executor-wide options (retries, max_pending, ...)
LIFECYCLE_KINDS = ("thread", "pool", "serial", "gevent", "greenlet", "process", "dask")
