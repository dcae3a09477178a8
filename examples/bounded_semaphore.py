"""A bounded semaphore: twenty tasks, at most five inside at a time.

``BoundedSemaphore(5)`` hands out five places. A task takes one on entering
(``with sem:``) and gives it back on leaving; the sixth task waits until one
is free. Each task counts who is inside (under a lock, in a shared dict) and
records the highest count it saw. "Bounded" means releasing more places than
were taken is an error (``ValueError``) instead of silently raising the limit.

The limit holds whatever ``--size`` is: with ten workers, five of them wait at
the semaphore; under ``serial`` only one task is ever inside.

Output, the same under every kind::

    20 tasks ran, never more than 5 inside at once: True
    one release too many -> ValueError

Run: ``python examples/bounded_semaphore.py --backend process --size 8``
(``--verbose`` also prints the peak, which depends on the kind and timing)
"""

from __future__ import annotations

from typing import Any

import _common

import unifex

TASKS = 20
PLACES = 5

#: every kind can run this program
NOT_APPLICABLE: dict[str, str] = {}


def visit(sem: Any, lock: Any, inside: Any) -> int:
    """Spend a moment inside the semaphore; return how many were inside with us."""
    with sem:
        with lock:
            inside["now"] += 1
            crowd = int(inside["now"])
            inside["peak"] = max(inside["peak"], crowd)
        unifex.sleep(0.02)  # long enough for the others to pile up at the door
        with lock:
            inside["now"] -= 1
    return crowd


def main() -> None:
    args = _common.parse_args(__doc__ or "", default_size=10, flags={"--verbose": "also print the peak count seen"})
    _common.skip_if_not_applicable(args.backend, NOT_APPLICABLE)
    with unifex.executor(args.backend, size=args.size) as ex:
        sem = ex.BoundedSemaphore(PLACES)
        lock = ex.Lock()
        inside = ex.dict(now=0, peak=0)
        futures = [ex.submit(visit, sem, lock, inside) for _ in range(TASKS)]
        crowds = [f.result() for f in futures]
        peak = inside["peak"]
        try:
            sem.release()  # every place is back already: this one is too many
            too_many = "accepted (not bounded!)"
        except ValueError:
            too_many = "ValueError"
    print(f"{len(crowds)} tasks ran, never more than {PLACES} inside at once: {peak <= PLACES and max(crowds) <= PLACES}")
    print(f"one release too many -> {too_many}")
    if args.verbose:
        print(f"peak inside: {peak} (workers: {args.size})")


if __name__ == "__main__":
    main()
