"""The tutorial's hand-made thread pool with callbacks, done by the ``pool`` kind.

The tutorial builds a pool class: ``run(func, args, callback)`` queues a job,
starts a thread only when no idle one can take it (up to a maximum), and
threads take jobs from the queue until told to stop; ``close()`` stops them
after the queue drains and ``terminate()`` stops them early. unifex's ``pool``
kind is that design with its races fixed: ``apply_async(fn, args,
callback=...)`` is ``run``, ``close()`` waits for every job and callback, and
idle threads exit after ``idle_timeout`` seconds, so the pool shrinks again.

Thirty jobs go in two bursts with a pause between. Each job counts how many
jobs run at once (under a lock, in a shared dict). The callbacks run in the
program and collect the results.

Output with the default ``--size 5``, the same under every kind::

    30 jobs, 30 callbacks, sum of results 8555
    never more than 5 jobs at once: True

Run: ``python examples/custom_pool.py --backend pool --verbose``
(``--verbose`` under ``pool`` shows the workers it started and reused)
"""

from __future__ import annotations

from typing import Any

import _common

import unifex

JOBS = 30

#: every kind can run this program
NOT_APPLICABLE: dict[str, str] = {}


def job(n: int, lock: Any, running: Any) -> int:
    with lock:
        running["now"] += 1
        running["peak"] = max(running["peak"], running["now"])
    unifex.sleep(0.02)  # the work: waiting on I/O, say
    with lock:
        running["now"] -= 1
    return n * n


def main() -> None:
    args = _common.parse_args(__doc__ or "", default_size=5, flags={"--verbose": "show the pool kind's worker threads"})
    _common.skip_if_not_applicable(args.backend, NOT_APPLICABLE)
    results: list[int] = []
    with unifex.executor(args.backend, size=args.size) as ex:
        lock = ex.Lock()
        running = ex.dict(now=0, peak=0)
        first = [ex.apply_async(job, (n, lock, running), callback=results.append) for n in range(JOBS // 2)]
        unifex.wait(first, timeout=60)
        if args.verbose and args.backend == "pool":
            # the pool kind's own attributes: not part of the common Executor protocol
            print(f"after burst 1: {ex.workers} worker threads, {ex.idle_workers} idle")  # type: ignore[attr-defined]
        unifex.sleep(0.05)  # a pause: the pool keeps its threads (idle_timeout is 60 s)
        second = [ex.apply_async(job, (n, lock, running), callback=results.append) for n in range(JOBS // 2, JOBS)]
        if args.verbose and args.backend == "pool":
            print(f"during burst 2: {ex.workers} worker threads (idle ones were reused)")  # type: ignore[attr-defined]
        unifex.wait(second, timeout=60)
        peak = running["peak"]  # read before the executor closes: its helpers may go with it
    # the with block closed the executor: every job and every callback is done
    print(f"{JOBS} jobs, {len(results)} callbacks, sum of results {sum(results)}")
    print(f"never more than {args.size} jobs at once: {peak <= args.size}")


if __name__ == "__main__":
    main()
