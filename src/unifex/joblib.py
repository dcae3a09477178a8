"""A joblib parallel backend on every unifex kind (and so scikit-learn's ``n_jobs``).

    import joblib, unifex.joblib   # importing registers the "unifex" backend

    with joblib.parallel_config(backend="unifex", kind="gevent", n_jobs=8):
        results = joblib.Parallel()(joblib.delayed(f)(i) for i in range(100))

Options besides ``kind`` go to :func:`unifex.executor`. joblib batches tasks
itself (its auto-batching aims at 0.2-2 s per batch). The cooperative kinds
(``gevent``, ``greenlet``) run their tasks in a thread of their own: joblib's
caller waits with ``time.sleep``, which would never yield to a hub in its own
thread. Needs the ``joblib`` extra: ``pip install unifex[joblib]``.
"""

from __future__ import annotations

import os
import threading
from typing import Any

try:
    import joblib
    from joblib._parallel_backends import AutoBatchingMixin, ParallelBackendBase
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("unifex.joblib needs joblib: pip install unifex[joblib]") from exc

import unifex

from ._future import Future

__all__ = ["UnifexBackend", "register"]


class _Driven:
    """A cooperative executor living in a thread of its own, which waits (so
    yields to the executor's hub / scheduler) until stopped. Other threads
    submit to it as to any executor."""

    def __init__(self, kind: str, size: int, options: dict[str, Any]) -> None:
        self._stop: Future[None] = Future()
        self._made: Future[Any] = Future()
        self._thread = threading.Thread(target=self._run, args=(kind, size, options), name=f"unifex-joblib-{kind}", daemon=True)
        self._thread.start()
        self.ex = self._made.result()

    def _run(self, kind: str, size: int, options: dict[str, Any]) -> None:
        try:
            ex = unifex.executor(kind, size=size, **options)
        except BaseException as exc:
            self._made.set_exception(exc)
            return
        self._made.set_result(ex)
        try:
            self._stop.result()
        finally:
            ex.close(wait=True)

    def close(self, terminate: bool = False) -> None:
        if terminate:
            self.ex.terminate()
        self._stop.try_set_result(None)
        self._thread.join()


class UnifexBackend(AutoBatchingMixin, ParallelBackendBase):  # type: ignore[misc]
    """joblib's ``ParallelBackendBase`` over ``unifex.executor(kind, size=n_jobs)``."""

    supports_retrieve_callback = True
    default_n_jobs = 1

    def __init__(self, kind: str = "thread", nesting_level: int | None = None, inner_max_num_threads: int | None = None, **options: Any) -> None:
        super().__init__(nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads)
        unifex.backends()  # fail early on an unknown kind, with the list of known ones
        from ._registry import get_factory

        factory = get_factory(kind)
        caps: frozenset[str] = getattr(factory, "capabilities", frozenset())
        self.kind = kind
        self.options = options
        self.uses_threads = "processes" not in caps
        self.supports_sharedmem = self.uses_threads
        self._cooperative = "cooperative" in caps
        self._ex: Any = None
        self._driven: _Driven | None = None
        self._n_jobs = 1

    def effective_n_jobs(self, n_jobs: int | None) -> int:
        if n_jobs == 0:
            raise ValueError("n_jobs == 0 in Parallel has no meaning")
        if n_jobs is None:
            return 1
        if n_jobs < 0:
            return max((os.cpu_count() or 1) + 1 + n_jobs, 1)
        return int(n_jobs)

    def configure(self, n_jobs: int | None = 1, parallel: Any = None, prefer: Any = None, require: Any = None, **backend_kwargs: Any) -> int:
        n = self.effective_n_jobs(n_jobs)
        self.parallel = parallel
        self._n_jobs = n
        if self._ex is None:
            if self._cooperative:
                self._driven = _Driven(self.kind, n, self.options)
                self._ex = self._driven.ex
            else:
                self._ex = unifex.executor(self.kind, size=n, **self.options)
        return n

    def submit(self, func: Any, callback: Any = None) -> Any:
        fut = self._ex.submit(func)
        if callback is not None:
            fut.add_done_callback(callback)
        return fut

    def retrieve_result_callback(self, out: Any) -> Any:
        return out.result()

    def _close(self, terminate: bool) -> None:
        ex, driven = self._ex, self._driven
        self._ex = self._driven = None
        if driven is not None:
            driven.close(terminate)
        elif ex is not None:
            if terminate:
                ex.terminate()
            ex.close(wait=True)

    def terminate(self) -> None:
        self._close(terminate=False)
        self.reset_batch_stats()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        self._close(terminate=True)
        if ensure_ready:
            self.configure(n_jobs=self._n_jobs, parallel=self.parallel)


def register(name: str = "unifex") -> None:
    """Register the backend with joblib under ``name`` (done on import)."""
    joblib.register_parallel_backend(name, UnifexBackend)


register()
