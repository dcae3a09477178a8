"""``close()`` versus ``terminate()``: finish the work, or stop now.

``close()`` takes no new work and, by default, waits until every accepted
task has finished (the end of a ``with`` block does this). ``terminate()``
stops now: tasks still queued are cancelled, and running tasks are stopped
where the model can stop them (worker processes killed, greenlets killed, an
embedded dask cluster closed). Threads cannot be interrupted: their futures
fail with ``TerminatedError`` at once, and the thread ends when the function
returns, which is why the program opens the ``release`` event afterwards.

Output with the default ``--size 2``, the same under every kind but serial::

    close(): waited for 6 tasks: 6 finished, 0 cancelled
    after close(): submit -> ExecutorClosedError
    terminate() with 2 tasks running and 4 queued: 2 TerminatedError, 4 cancelled
    after terminate(): submit -> ExecutorClosedError

Run: ``python examples/close_vs_terminate.py --backend process``
"""

from __future__ import annotations

import contextlib
from collections import Counter
from typing import Any

import _common

import unifex

TASKS = 6

#: kind -> why this program cannot run under it
NOT_APPLICABLE = {
    "serial": "serial runs each task to the end inside submit(), so terminate() never finds a task queued or running to stop",
}


def short_job(n: int) -> int:
    unifex.sleep(0.01)
    return n


def long_job(n: int, started: Any, release: Any) -> int:
    started.put(n)
    release.wait(60)  # holds its worker until the program opens the event (or kills the task)
    return n


def outcome(fut: unifex.Future[Any]) -> str:
    if fut.cancelled():
        return "cancelled"
    exc = fut.exception(timeout=60)
    return "finished" if exc is None else type(exc).__name__


def try_submit(ex: unifex.Executor) -> str:
    try:
        ex.submit(short_job, 0)
    except unifex.ExecutorClosedError as exc:
        return type(exc).__name__
    return "accepted (unexpected)"


def main() -> None:
    args = _common.parse_args(__doc__ or "", default_size=2)
    _common.skip_if_not_applicable(args.backend, NOT_APPLICABLE)

    ex = unifex.executor(args.backend, size=args.size)
    futures = [ex.submit(short_job, n) for n in range(TASKS)]
    ex.close()  # wait=True: returns when all six are done
    counts = Counter(outcome(f) for f in futures)
    print(f"close(): waited for {TASKS} tasks: {counts['finished']} finished, {counts['cancelled']} cancelled")
    print(f"after close(): submit -> {try_submit(ex)}")

    ex = unifex.executor(args.backend, size=args.size)
    started = ex.Queue()
    release = ex.Event()
    futures = [ex.submit(long_job, n, started, release) for n in range(TASKS)]
    # wait until every worker holds a task: the rest are queued behind them
    running = [started.get(timeout=60) for _ in range(args.size)]
    ex.terminate()
    counts = Counter(outcome(f) for f in futures)
    # thread workers still run their task: let them return. Kinds that stop
    # their helpers with the executor may refuse the call; their tasks are gone.
    with contextlib.suppress(unifex.ExecutorClosedError):
        release.set()
    queued = TASKS - len(running)
    print(
        f"terminate() with {len(running)} tasks running and {queued} queued: "
        f"{counts['TerminatedError']} TerminatedError, {counts['cancelled']} cancelled"
    )
    print(f"after terminate(): submit -> {try_submit(ex)}")


if __name__ == "__main__":
    main()
