"""The ``serial`` kind: each task runs in the caller, at submit.

For debugging and profiling: tracebacks, breakpoints and profilers see the task
in the calling thread. Nothing runs concurrently, so a task that waits for
another task to do something waits forever; a per-task ``timeout`` is honoured
the way thread tasks honour it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, final

from .. import _wait
from .._base import COMMON_OPTIONS, BaseExecutor, run_task
from .._future import Future
from .._worker import WORKER_OPTIONS, WorkerLife, WorkerSetup, bind_state, unbind_state

__all__ = ["SerialExecutor"]


@final
class SerialExecutor(BaseExecutor):
    kind: ClassVar[str] = "serial"
    options: ClassVar[frozenset[str]] = COMMON_OPTIONS | WORKER_OPTIONS
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        size: int | None = None,
        *,
        initializer: Callable[..., object] | None = None,
        initargs: tuple[Any, ...] = (),
        finalizer: Callable[[], object] | None = None,
        max_tasks_per_worker: int | None = None,
        **common: Any,
    ) -> None:
        self._setup = WorkerSetup(initializer, initargs, finalizer, max_tasks_per_worker)
        super().__init__(size, **common)
        # the one worker is the caller: its state is bound around each task, and
        # the initializer runs before the first task
        self._life: WorkerLife | None = None

    @classmethod
    def default_size(cls) -> int:
        return 1

    _runs_at_dispatch: ClassVar[bool] = True

    def _dispatch(self, fut: Future[Any], fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None) -> None:
        life = self._life
        if life is None or life.spent:
            with self._state_lock:  # submits from several threads share one worker life
                life = self._life
                if life is None or life.spent:
                    if life is not None:
                        self._end_life()
                    life = self._life = WorkerLife(self._setup, self.kind)
                    life.begin()
                    unbind_state(life.previous)  # bound only while a task runs
        previous = bind_state(life.state)
        try:
            if life.take(fut):
                run_task((fut, fn, args, kwargs, timeout), self._timer if timeout is not None else None)
        finally:
            unbind_state(previous)
        # Ctrl-C or sys.exit() in a task stops the caller, as in a plain call:
        # stored in the future, the program would carry on (and need one Ctrl-C per task)
        exc = fut._exception
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise exc

    def _end_life(self) -> None:
        life, self._life = self._life, None
        if life is not None:
            life.previous = bind_state(life.state)
            life.end()

    def _call_later(self, delay: float, fn: Callable[[Any], object]) -> None:
        # a retry runs in the caller too, within the submit that ran the task
        _wait.sleep(delay)
        fn(None)

    def _shutdown(self, wait: bool) -> None:
        with self._state_lock:
            self._end_life()
        if wait:
            self._stop_timer()

    def _terminate(self) -> None:
        with self._state_lock:
            self._end_life()
        self._stop_timer()
