"""SPEC 5: the error hierarchy; each error also subclasses the builtin users
already catch, and says when it is raised."""

from __future__ import annotations

import concurrent.futures
import pickle

import pytest

import unifex

# a start method can change this clause: run it under each (see unifex.testing)
pytestmark = pytest.mark.worker_start


ERRORS = {
    unifex.UnknownBackendError: ValueError,
    unifex.ExecutorClosedError: RuntimeError,
    unifex.TaskTimeoutError: TimeoutError,
    unifex.WorkerCrashedError: None,
    unifex.TerminatedError: None,
    unifex.SerializationError: None,
    unifex.DeadlockError: None,
}


@pytest.mark.parametrize("error", list(ERRORS))
def test_hierarchy_and_docs(error: type[Exception]) -> None:
    assert issubclass(error, unifex.UnifexError)
    builtin = ERRORS[error]
    if builtin is not None:
        assert issubclass(error, builtin)
    assert error.__doc__ and "raised" in error.__doc__.lower()


def test_worker_crashed_error_carries_pid_and_exitcode_and_pickles() -> None:
    err = unifex.WorkerCrashedError("worker pid 12 was killed by SIGKILL", pid=12, exitcode=-9)
    copy = pickle.loads(pickle.dumps(err))
    assert (copy.pid, copy.exitcode, str(copy)) == (12, -9, str(err))


def test_cancelled_error_is_the_concurrent_futures_one() -> None:
    assert unifex.CancelledError is concurrent.futures.CancelledError
