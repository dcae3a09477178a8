"""The public surface: ``unifex.__all__`` is exactly what users may import,
each name exists, and the package ships ``py.typed``."""

from __future__ import annotations

from pathlib import Path

import unifex

EXPECTED = {
    "ALL_COMPLETED",
    "FIRST_COMPLETED",
    "FIRST_EXCEPTION",
    "CancelledError",
    "DeadlockError",
    "Executor",
    "ExecutorClosedError",
    "Future",
    "LivelockError",
    "SerializationError",
    "TaskTimeoutError",
    "TerminatedError",
    "UnifexError",
    "UnknownBackendError",
    "WorkerCrashedError",
    "__version__",
    "as_completed",
    "backends",
    "executor",
    "progress",
    "register_backend",
    "sleep",
    "wait",
    "worker_state",
}
# the helper protocols (SPEC 4)
EXPECTED |= {"ConditionLike", "EventLike", "LockLike", "QueueLike", "RLockLike", "SemaphoreLike"}


def test_all_is_exactly_the_public_names() -> None:
    assert isinstance(unifex.__all__, tuple)
    assert set(unifex.__all__) == EXPECTED
    for name in unifex.__all__:
        assert hasattr(unifex, name), name


def test_py_typed_is_shipped() -> None:
    assert (Path(unifex.__file__).parent / "py.typed").exists()


def test_backends_is_the_public_function_after_backend_modules_load() -> None:
    import types

    import unifex._backends.pool as pool_module
    import unifex._backends.thread

    assert not isinstance(unifex.backends, types.ModuleType)
    assert unifex.backends()["thread"] is True
    assert pool_module.__name__ == "unifex._backends.pool"
    assert unifex._backends.thread.__name__ == "unifex._backends.thread"
