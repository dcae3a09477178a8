"""A shared dict filled by workers: each task writes its own entry, and all of
them add to one running total under a lock.

``ex.dict()`` is a mapping every worker of the executor sees: a plain dict
under the thread and greenlet kinds; under ``process``, a dict held by a
thread of the program that worker processes reach over a socket; under
``dask``, one kept by the scheduler. Each single operation
(``d[k] = v``, ``d[k]``) is atomic; a read-modify-write such as
``d["total"] += n`` is two operations, so it takes a lock.

A plain ``dict`` global would not do: worker processes each fill their own
copy and the program's stays empty. Run with ``--verbose`` to see it.

Output, the same under every kind::

    lengths: dask=4 gevent=6 greenlet=8 pool=4 process=7 serial=6 thread=6
    total letters: 41

Run: ``python examples/shared_dict.py --backend dask --size 2``
"""

from __future__ import annotations

from typing import Any

import _common

import unifex

WORDS = ["thread", "process", "pool", "gevent", "greenlet", "serial", "dask"]

#: every kind can run this program
NOT_APPLICABLE: dict[str, str] = {}

#: a plain module global: shared by thread tasks only (see --verbose)
plain: dict[str, int] = {}


def measure(word: str, lengths: Any, totals: Any, lock: Any) -> None:
    lengths[word] = len(word)  # one operation: atomic, no lock needed
    plain[word] = len(word)  # lands in this worker's copy of the global
    with lock:  # read, add, write: three steps that must not interleave
        totals["letters"] = totals["letters"] + len(word)


def main() -> None:
    args = _common.parse_args(__doc__ or "", default_size=4, flags={"--verbose": "also show what a plain global dict received"})
    _common.skip_if_not_applicable(args.backend, NOT_APPLICABLE)
    with unifex.executor(args.backend, size=args.size) as ex:
        lengths = ex.dict()
        totals = ex.dict(letters=0)
        lock = ex.Lock()
        for f in [ex.submit(measure, word, lengths, totals, lock) for word in WORDS]:
            f.result()
        filled = dict(lengths.items())
        letters = totals["letters"]
    print("lengths:", " ".join(f"{word}={filled[word]}" for word in sorted(filled)))
    print(f"total letters: {letters}")
    if args.verbose:
        print(f"a plain global dict got {len(plain)} of {len(WORDS)} entries in this process under {args.backend!r}")


if __name__ == "__main__":
    main()
