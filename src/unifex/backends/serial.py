"""The ``serial`` kind: each task runs in the caller, at submit.

For debugging and profiling: tracebacks, breakpoints and profilers see the task
in the calling thread. Nothing runs concurrently, so a task that waits for
another task to do something waits forever; a per-task ``timeout`` is honoured
the way thread tasks honour it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, final

from .._base import BaseExecutor, run_task
from .._future import Future

__all__ = ["SerialExecutor"]


@final
class SerialExecutor(BaseExecutor):
    kind: ClassVar[str] = "serial"
    capabilities: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def default_size(cls) -> int:
        return 1

    _runs_at_dispatch: ClassVar[bool] = True

    def _dispatch(self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None) -> None:
        run_task((fut, fn, args, kwargs, timeout), self._timer if timeout is not None else None)
        # Ctrl-C or sys.exit() in a task stops the caller, as in a plain call:
        # stored in the future, the program would carry on (and need one Ctrl-C per task)
        exc = fut._exception
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise exc

    def _shutdown(self, wait: bool) -> None:
        if wait:
            self._stop_timer()

    def _terminate(self) -> None:
        self._stop_timer()
