"""A condition with ``notify(n)``: the program lets waiting tasks go n at a time.

Every task waits on the condition until a ticket is available. The program
releases them in waves: one ticket with ``notify(1)``, two with ``notify(2)``,
then the rest with ``notify_all()``. (The tutorial reads n from the keyboard;
here the waves are fixed so the output can be checked.)

Two habits make conditions safe, and both show here:

* wait in a loop on a predicate (``while no ticket: cond.wait()``): a wake-up
  is a hint to look again, not a promise, so ``notify(2)`` lets through at
  most the two tickets it came with even if more tasks wake;
* change the shared state and notify while holding the condition's lock, so
  a task cannot check the predicate, miss the notify, and sleep for ever.

The program also waits on the same condition until every task is waiting,
so no notify goes out before its waiter is there.

Output with the default ``--size 6``, the same under every kind but serial::

    6 tasks wait on the condition
    notify(1) -> 1 went through, 5 still waiting
    notify(2) -> 2 went through, 3 still waiting
    notify_all() -> 3 went through, 0 still waiting

Run: ``python examples/condition_notify.py --backend greenlet``
"""

from __future__ import annotations

from typing import Any

import _common

import unifex

#: kind -> why this program cannot run under it
NOT_APPLICABLE = {
    "serial": "serial runs each task inside submit(), so the first task would wait for a ticket before the program could hand one out",
}


def wait_for_ticket(number: int, cond: Any, state: Any, through: Any) -> None:
    with cond:
        state["waiting"] += 1
        cond.notify_all()  # the program waits for the last arrival on this condition
        while state["tickets"] == 0:
            cond.wait()
        state["tickets"] -= 1
        state["waiting"] -= 1
    through.put(number)


def main() -> None:
    args = _common.parse_args(__doc__ or "", default_size=6, min_size=3)
    _common.skip_if_not_applicable(args.backend, NOT_APPLICABLE)
    tasks = args.size  # all of them wait at once: one worker each
    with unifex.executor(args.backend, size=tasks) as ex, _common.terminate_on_error(ex):
        cond = ex.Condition()
        state = ex.dict(waiting=0, tickets=0)
        through = ex.Queue()
        futures = [ex.submit(wait_for_ticket, n, cond, state, through) for n in range(tasks)]
        with cond:
            while state["waiting"] < tasks:
                # every arrival notifies, so 30 s without one means a task never
                # started or a notify_all() was lost: an error, not a hang
                if not cond.wait(timeout=30):
                    raise TimeoutError(f"no notify for 30 s while {state['waiting']} of {tasks} tasks had arrived")
        print(f"{tasks} tasks wait on the condition")

        for label, n in (("notify(1)", 1), ("notify(2)", 2), ("notify_all()", tasks - 3)):
            with cond:
                state["tickets"] += n
                if label == "notify_all()":
                    cond.notify_all()
                else:
                    cond.notify(n)
            went = [through.get(timeout=30) for _ in range(n)]
            with cond:
                still = state["waiting"]
            print(f"{label} -> {len(went)} went through, {still} still waiting")
        for f in futures:
            f.result(timeout=30)


if __name__ == "__main__":
    main()
