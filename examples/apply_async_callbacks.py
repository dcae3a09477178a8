"""``apply_async`` with callbacks: the ``multiprocessing.Pool`` way to get
results as they come.

Each task computes a square after a short pause; the task for 7 fails.
``callback(result)`` runs for each success and ``error_callback(exc)`` for each
failure. Callbacks always run in the program's own process (never in a worker
process or on a dask worker), so they may append to an ordinary list: the
program sees every append, whatever the kind.

``close()`` (here: the end of the ``with`` block) returns only after every
accepted task has finished and every callback has run: the lists are complete
once the block ends, with no ``join()`` needed.

Output, the same under every kind::

    callbacks got 9 results: 0 1 4 9 16 25 36 64 81
    error callbacks got 1 error: ValueError('7 is unlucky')

Callbacks fire in the order tasks finish, which varies; the program sorts.

Run: ``python examples/apply_async_callbacks.py --backend process``
"""

from __future__ import annotations

import _common

import unifex

#: every kind can run this program
NOT_APPLICABLE: dict[str, str] = {}


def slow_square(n: int) -> int:
    unifex.sleep(0.01 * (n % 3))  # uneven pauses: results arrive out of order
    if n == 7:
        raise ValueError(f"{n} is unlucky")
    return n * n


def main() -> None:
    args = _common.parse_args(__doc__ or "", default_size=4)
    _common.skip_if_not_applicable(args.backend, NOT_APPLICABLE)
    results: list[int] = []
    errors: list[BaseException] = []
    with unifex.executor(args.backend, size=args.size) as ex:
        for n in range(10):
            # list.append is atomic, so thread workers calling it at once is fine
            ex.apply_async(slow_square, (n,), callback=results.append, error_callback=errors.append)
    # the with block closed the executor: every callback has run
    print(f"callbacks got {len(results)} results:", " ".join(str(r) for r in sorted(results)))
    print(f"error callbacks got {len(errors)} error:", ", ".join(repr(e) for e in errors))


if __name__ == "__main__":
    main()
