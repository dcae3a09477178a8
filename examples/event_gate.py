"""An event as a gate: every task waits at the gate until the program opens it.

Each task says it has arrived (on a queue), then waits on the event. The
program collects one arrival per task, checks that nobody got through the
closed gate, then sets the event: every waiting task goes through at once.
``Event.wait`` returns at once while the event is set; ``clear()`` closes the
gate again for later arrivals.

Output with the default ``--size 4``, the same under every kind but serial::

    4 tasks wait at the gate
    gate.wait(0.1) while closed -> False
    none went through the closed gate: True
    gate opened: 4 tasks went through, each one after it opened: True
    gate closed again: is_set() -> False

Run: ``python examples/event_gate.py --backend gevent --size 10``
"""

from __future__ import annotations

from typing import Any

import _common

import unifex

#: kind -> why this program cannot run under it
NOT_APPLICABLE = {
    "serial": "serial runs each task inside submit(), so the first task would wait at the gate before the program could open it",
}


def runner(number: int, arrived: Any, gate: Any, state: Any) -> bool:
    """Arrive, wait for the gate, and return whether it was really open."""
    arrived.put(number)
    gate.wait()
    return bool(state["open"])


def main() -> None:
    args = _common.parse_args(__doc__ or "", default_size=4)
    _common.skip_if_not_applicable(args.backend, NOT_APPLICABLE)
    # one task per worker: all of them must be waiting at the same time
    tasks = args.size
    with unifex.executor(args.backend, size=tasks) as ex, _common.terminate_on_error(ex):
        arrived = ex.Queue()
        gate = ex.Event()
        state = ex.dict(open=False)
        futures = [ex.submit(runner, n, arrived, gate, state) for n in range(tasks)]
        # the timeout turns a bug into an error instead of a hang
        arrivals = sorted(arrived.get(timeout=30) for _ in range(tasks))
        print(f"{len(arrivals)} tasks wait at the gate")
        print(f"gate.wait(0.1) while closed -> {gate.wait(0.1)}")
        print(f"none went through the closed gate: {not any(f.done() for f in futures)}")

        state["open"] = True  # written before the gate opens, so every task must see it
        gate.set()
        passed = [f.result(timeout=30) for f in futures]
        print(f"gate opened: {len(passed)} tasks went through, each one after it opened: {all(passed)}")
        gate.clear()
        print(f"gate closed again: is_set() -> {gate.is_set()}")


if __name__ == "__main__":
    main()
