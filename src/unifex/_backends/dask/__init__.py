"""The ``dask`` kind: tasks on a dask.distributed cluster, embedded or joined.

Split by the process each part runs in: ``client.py`` (the executor, in the
submitting process, with ``payload.py``, how a call travels, and
``results.py``, results kept on the cluster until asked for), ``worker.py`` (inside dask workers), ``scheduler.py`` (the
helper extension, in the scheduler), ``helpers.py`` (the helper handles,
wherever they are used) and ``cluster.py`` (the embedded cluster and its
reporting nanny). ``distributed`` is imported only inside this package.
"""

from __future__ import annotations

from typing import Any

__all__ = ["DaskExecutor"]


def __getattr__(name: str) -> Any:
    # lazily, so that a worker unpickling ``worker.run_remote`` does not import the executor
    if name == "DaskExecutor":
        from .client import DaskExecutor

        return DaskExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
