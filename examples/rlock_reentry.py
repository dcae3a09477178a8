"""RLock re-entry: a transfer holds the lock while it calls a withdraw and a
deposit that take the same lock again.

``withdraw`` and ``deposit`` each take the lock, so either is safe on its own.
A transfer must also hold it across both, or an audit running between the two
steps would find the money in neither account. A task that takes a ``Lock``
it already holds waits for itself forever; an ``RLock`` counts the
acquisitions of its holder and is free again after as many releases.

Output, the same under every kind::

    a Lock taken again by its holder: acquire(timeout=0.2) -> False
    an RLock taken again by its holder: acquire() -> True
    balances: alice=60 bob=120 carol=120
    audits: 6, every one saw a total of 300: True

Run: ``python examples/rlock_reentry.py --backend greenlet``
"""

from __future__ import annotations

from typing import Any

import _common

import unifex

OPENING = {"alice": 100, "bob": 100, "carol": 100}
# (from, to, amount): 2 rounds around the ring alice -> bob -> carol -> alice
TRANSFERS = [("alice", "bob", 30), ("bob", "carol", 20), ("carol", "alice", 10)] * 2

#: every kind can run this program
NOT_APPLICABLE: dict[str, str] = {}


def withdraw(accounts: Any, lock: Any, name: str, amount: int) -> None:
    with lock:
        accounts[name] = accounts[name] - amount


def deposit(accounts: Any, lock: Any, name: str, amount: int) -> None:
    with lock:
        accounts[name] = accounts[name] + amount


def transfer(accounts: Any, lock: Any, src: str, dst: str, amount: int) -> None:
    with lock:  # held across both steps; withdraw and deposit take it a second time
        withdraw(accounts, lock, src, amount)
        unifex.sleep(0.005)  # an audit that got in here would see the money nowhere
        deposit(accounts, lock, dst, amount)


def audit(accounts: Any, lock: Any) -> int:
    with lock:
        return sum(accounts[name] for name in OPENING)


def main() -> None:
    args = _common.parse_args(__doc__ or "", default_size=4)
    _common.skip_if_not_applicable(args.backend, NOT_APPLICABLE)
    with unifex.executor(args.backend, size=args.size) as ex:
        plain = ex.Lock()
        plain.acquire()
        # without the timeout this would never return: the holder waits for itself
        again = plain.acquire(timeout=0.2)
        plain.release()
        print(f"a Lock taken again by its holder: acquire(timeout=0.2) -> {again}")

        lock = ex.RLock()
        with lock:
            print(f"an RLock taken again by its holder: acquire() -> {lock.acquire()}")
            lock.release()

        accounts = ex.dict(OPENING)
        moves: list[unifex.Future[None]] = []
        audits: list[unifex.Future[int]] = []
        # an audit after each transfer, so audits run while transfers are under way
        for src, dst, amount in TRANSFERS:
            moves.append(ex.submit(transfer, accounts, lock, src, dst, amount))
            audits.append(ex.submit(audit, accounts, lock))
        for f in moves:
            f.result()  # re-raises a transfer's error, if any
        totals = [f.result() for f in audits]
        balances = {name: accounts[name] for name in OPENING}
    print("balances:", " ".join(f"{name}={balances[name]}" for name in OPENING))
    print(f"audits: {len(totals)}, every one saw a total of {sum(OPENING.values())}: {all(t == sum(OPENING.values()) for t in totals)}")


if __name__ == "__main__":
    main()
