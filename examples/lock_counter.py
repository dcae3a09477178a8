"""A lock-protected counter: ten tasks each take one from a shared counter of 50.

Each task reads the counter, pauses, then writes back one less. Without a
lock, tasks running at once read the same value and updates are lost: the
counter ends above 40 (run with ``--no-lock`` to watch it happen; in the
tutorial all ten threads read 50 and wrote 49). With the lock, read-pause-write
is one step and the tasks write 49, 48, ... 40 in turn.

The counter lives in ``ex.dict()`` and the lock is ``ex.Lock()``: both are made
by the executor, so they are shared by its workers whatever they are (threads,
processes, greenlets, dask workers). A plain global would be shared by thread
tasks only; each worker process would count down its own copy.

Output, the same under every kind::

    counter: 50 -> 40
    values the tasks wrote: 49 48 47 46 45 44 43 42 41 40

Run: ``python examples/lock_counter.py --backend process --size 4``
"""

from __future__ import annotations

from typing import Any

import _common

import unifex

START = 50
TASKS = 10

#: every kind can run this program
NOT_APPLICABLE: dict[str, str] = {}


def take_one(counter: Any, lock: Any) -> int:
    """Take one from ``counter["value"]``; return the value written."""
    if lock is None:  # --no-lock: the race of the tutorial
        value = counter["value"]
        unifex.sleep(0.01)  # another task reads the same value meanwhile
        counter["value"] = value - 1
        return int(value) - 1
    with lock:
        value = counter["value"]
        # unifex.sleep, not time.sleep: under gevent and greenlet it lets the
        # other tasks run, so they really do queue up on the lock
        unifex.sleep(0.01)
        counter["value"] = value - 1
        return int(value) - 1


def main() -> None:
    args = _common.parse_args(__doc__ or "", default_size=4, flags={"--no-lock": "drop the lock to see the lost updates"})
    _common.skip_if_not_applicable(args.backend, NOT_APPLICABLE)
    with unifex.executor(args.backend, size=args.size) as ex:
        counter = ex.dict(value=START)
        lock = None if args.no_lock else ex.Lock()
        futures = [ex.submit(take_one, counter, lock) for _ in range(TASKS)]
        written = [f.result() for f in futures]
        final = counter["value"]
    print(f"counter: {START} -> {final}")
    # the order in which tasks got the lock varies by kind; the set of values does not
    print("values the tasks wrote:", " ".join(str(v) for v in sorted(written, reverse=True)))


if __name__ == "__main__":
    main()
