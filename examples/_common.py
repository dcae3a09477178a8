"""What every example shares: the ``--backend KIND`` / ``--size N`` command line
and the one-line "not applicable" exit for a kind whose model cannot run it.

Task functions never use this module: they are shipped to worker processes and
dask workers, which may not have ``examples/`` on their import path.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

import unifex

__all__ = ["NOT_APPLICABLE_MARKER", "parse_args", "skip_if_not_applicable", "terminate_on_error"]

#: the first words of the line an example prints, before exiting with status 0,
#: when the chosen kind cannot run it; ``run_all.py`` and the tests look for it
NOT_APPLICABLE_MARKER = "NOT APPLICABLE"


def parse_args(description: str, default_size: int, min_size: int = 1, flags: Mapping[str, str] | None = None) -> argparse.Namespace:
    """``--backend KIND`` (default ``thread``) and ``--size N`` (workers; at least
    ``min_size``), plus the boolean ``flags`` (``--name`` -> help) of one program."""
    first_line = description.strip().splitlines()[0]
    parser = argparse.ArgumentParser(description=first_line)
    parser.add_argument(
        "--backend",
        default="thread",
        metavar="KIND",
        choices=sorted(unifex.backends()),
        help="the concurrency model: " + ", ".join(sorted(unifex.backends())) + " (default: thread)",
    )
    parser.add_argument("--size", type=int, default=default_size, metavar="N", help=f"how many workers (default: {default_size})")
    for name, text in (flags or {}).items():
        parser.add_argument(name, action="store_true", help=text)
    args = parser.parse_args()
    if args.size < min_size:
        parser.error(f"--size must be at least {min_size} for this program, not {args.size}: its tasks wait for each other")
    return args


def skip_if_not_applicable(kind: str, reasons: Mapping[str, str]) -> None:
    """Print one line saying why ``kind`` cannot run this program and exit 0.

    ``reasons`` is the program's ``NOT_APPLICABLE`` table (kind -> why); the
    tests read the same table to check that nothing else is skipped.
    """
    reason = reasons.get(kind)
    if reason is not None:
        print(f"{NOT_APPLICABLE_MARKER} under {kind!r}: {reason}")
        sys.exit(0)


@contextmanager
def terminate_on_error(ex: unifex.Executor) -> Iterator[unifex.Executor]:
    """On an error, ``terminate()`` the executor instead of letting ``with`` close it.

    When tasks wait for the program (at a gate, on a condition, for a queue
    item) and the program fails before it lets them go, ``close()`` would
    wait for them for ever; ``terminate()`` stops them, so the error shows.
    """
    try:
        yield ex
    except BaseException:
        ex.terminate()
        raise
