"""Producers and consumers over a bounded queue: cooks put dishes on a counter
that holds three, customers take them off.

The counter is ``ex.Queue(maxsize=3)``. A cook whose ``put`` finds it full
waits until a customer takes a dish, so fast cooks cannot pile up food
(memory) without limit: the queue's bound is the back-pressure. Customers
call ``task_done()`` after each dish, so the program's ``join()`` returns once
every dish put has been eaten; then it sends each customer a ``None`` to go
home.

Half the workers cook and half eat (``--size 4``: two of each); all of them run
at once, each on its own worker.

Output, the same under every kind but serial::

    cooks made 20 dishes, customers ate 20
    every dish eaten exactly once: True

Run: ``python examples/producer_consumer.py --backend process --size 6``
"""

from __future__ import annotations

from typing import Any

import _common

import unifex

DISHES = 20
COUNTER_SLOTS = 3

#: kind -> why this program cannot run under it
NOT_APPLICABLE = {
    "serial": "serial runs each task inside submit(): the first cook fills the counter and waits for a customer who can never start",
}


def cook(first: int, last: int, counter: Any) -> int:
    """Put dishes ``first..last-1`` on the counter; return how many."""
    for dish in range(first, last):
        unifex.sleep(0.002)  # cooking takes a moment
        counter.put(dish)  # waits while the counter is full
    return last - first


def customer(counter: Any) -> list[int]:
    """Eat until told to go home (``None``); return the dishes eaten."""
    eaten: list[int] = []
    while True:
        dish = counter.get()
        try:
            if dish is None:
                return eaten
            unifex.sleep(0.003)  # eating takes a moment too
            eaten.append(dish)
        finally:
            counter.task_done()


def main() -> None:
    args = _common.parse_args(__doc__ or "", default_size=4, min_size=2)
    _common.skip_if_not_applicable(args.backend, NOT_APPLICABLE)
    cooks = args.size // 2
    customers = args.size - cooks
    with unifex.executor(args.backend, size=args.size) as ex, _common.terminate_on_error(ex):
        counter = ex.Queue(maxsize=COUNTER_SLOTS)
        eating = [ex.submit(customer, counter) for _ in range(customers)]
        # split the dishes among the cooks: cook c makes dishes bounds[c]..bounds[c+1]-1
        bounds = [DISHES * c // cooks for c in range(cooks + 1)]
        cooking = [ex.submit(cook, bounds[c], bounds[c + 1], counter) for c in range(cooks)]
        made = sum(f.result(timeout=30) for f in cooking)
        counter.join()  # every dish put has been taken and task_done() called
        for _ in range(customers):
            counter.put(None)
        plates = [f.result(timeout=30) for f in eating]
    eaten = sorted(dish for plate in plates for dish in plate)
    print(f"cooks made {made} dishes, customers ate {len(eaten)}")
    print(f"every dish eaten exactly once: {eaten == list(range(DISHES))}")


if __name__ == "__main__":
    main()
