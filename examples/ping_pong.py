"""Ping-pong: two tasks hand a ball back and forth, each waiting for the other.

The tutorial shows greenlets switching by hand: ``gr2.switch()`` jumps into
the other greenlet, which later switches back. Here each player waits on its
own inbox (``inbox.get()``) and hands the ball over by putting it in the
other's. Under ``greenlet`` and ``gevent`` that ``get`` is exactly the switch:
a player with an empty inbox suspends, and the only other runnable task, the
opponent, runs until it passes the ball back. Both players live in one
thread and nothing runs in parallel. Under threads, processes and dask the
same hand-off is a blocking wait, and the rally comes out the same: the ball
decides who moves, not the scheduler.

Each player writes what it did to a shared log before passing the ball, so
the log is in rally order.

Output, the same under every kind but serial::

    ping hits ball 1
    pong hits ball 2
    ping hits ball 3
    pong hits ball 4
    ping hits ball 5
    pong hits ball 6
    rally of 6 hits; ping hit 3, pong hit 3

Run: ``python examples/ping_pong.py --backend greenlet --verbose``
(``--verbose`` also says where the players ran: one thread, two threads, or
other processes)
"""

from __future__ import annotations

import os
import threading
from typing import Any

import _common

import unifex

HITS_EACH = 3

#: kind -> why this program cannot run under it
NOT_APPLICABLE = {
    "serial": "serial runs each task to the end inside submit(), so ping would wait for a ball that pong, not started yet, can never return",
}


def player(name: str, inbox: Any, outbox: Any, log: Any) -> tuple[int, int, int]:
    """Hit the ball ``HITS_EACH`` times; return how many hits, and the process
    and thread the player ran in (for ``--verbose``)."""
    for _ in range(HITS_EACH):
        ball = inbox.get()  # wait for the ball: under greenlet and gevent, switch to the opponent
        log.put(f"{name} hits ball {ball}")  # logged before the ball leaves, so in rally order
        outbox.put(ball + 1)
    return HITS_EACH, os.getpid(), threading.get_ident()


def where(ping: tuple[int, int, int], pong: tuple[int, int, int]) -> str:
    """Say where the two players ran, relative to this program's main thread."""
    here = (os.getpid(), threading.get_ident())
    if ping[1:] == pong[1:] == here:
        return "both players ran in the program's own thread, taking turns"
    if ping[1] == pong[1] == here[0]:
        return "the players ran in two threads of the program"
    return "the players ran in other processes"


def main() -> None:
    args = _common.parse_args(__doc__ or "", default_size=2, min_size=2, flags={"--verbose": "also say where the players ran"})
    _common.skip_if_not_applicable(args.backend, NOT_APPLICABLE)
    with unifex.executor(args.backend, size=args.size) as ex, _common.terminate_on_error(ex):
        to_ping, to_pong, log = ex.Queue(), ex.Queue(), ex.Queue()
        ping = ex.submit(player, "ping", to_ping, to_pong, log)
        pong = ex.submit(player, "pong", to_pong, to_ping, log)
        to_ping.put(1)  # serve
        done = {"ping": ping.result(timeout=30), "pong": pong.result(timeout=30)}
        rally = [log.get(timeout=30) for _ in range(HITS_EACH * 2)]
    for line in rally:
        print(line)
    print(f"rally of {len(rally)} hits; ping hit {done['ping'][0]}, pong hit {done['pong'][0]}")
    if args.verbose:
        print(where(done["ping"], done["pong"]))


if __name__ == "__main__":
    main()
