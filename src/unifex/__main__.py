"""The ``unifex`` command (also ``python -m unifex``).

``unifex bench`` measures every usable kind on the workloads that decide which
kind to use, beside the raw library each kind wraps, and prints one table;
``--json`` and ``--plot`` save it. See docs/bench.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="unifex", description="unifex: one executor API over every concurrency model Python has.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    bench = commands.add_parser(
        "bench",
        help="measure every usable kind beside the raw libraries and print a table",
        description=(
            "Measure every usable kind on tiny-task overhead, map throughput, I/O fan-out, CPU-bound work, "
            "large numpy arguments (when numpy is installed) and shared-state operations, beside the raw library each kind wraps, and print one table "
            "(rows: workloads; columns: kinds; cells: the median and unifex time / raw library time)."
        ),
    )
    bench.add_argument("--kinds", metavar="KIND,KIND", help="comma-separated kinds to measure (default: every usable kind)")
    bench.add_argument("--quick", action="store_true", help="a much shorter run with small counts (for smoke tests; numbers are rough)")
    bench.add_argument("--json", metavar="FILE", help="also write every number, the machine and the raw baselines to FILE as JSON")
    bench.add_argument("--plot", metavar="FILE.png", help="also draw the table as a bar chart to FILE.png (needs: pip install 'unifex[plot]')")
    return parser


def _kinds(parser: argparse.ArgumentParser, text: str | None) -> list[str]:
    """The kinds to measure: every usable one by default; named ones must exist and be usable."""
    import unifex
    from unifex._registry import BUILTIN

    usable = unifex.backends()
    if text is None:
        return [kind for kind, ok in usable.items() if ok]
    kinds = [k.strip() for k in text.split(",") if k.strip()]
    if not kinds:
        parser.error(f"--kinds needs at least one kind; available here: {', '.join(k for k, ok in usable.items() if ok)}")
    for kind in kinds:
        if kind not in usable:
            parser.error(f"unknown kind {kind!r} in --kinds; available here: {', '.join(k for k, ok in usable.items() if ok)}")
        if not usable[kind]:
            extra = BUILTIN[kind][2] if kind in BUILTIN else None
            how = f"install it with: pip install '{extra}'" if extra else "this installation of unifex does not ship it"
            parser.error(f"kind {kind!r} is not usable here; {how}")
    return list(dict.fromkeys(kinds))


def bench(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from . import bench as _bench

    kinds = _kinds(parser, args.kinds)
    for option, path in (("--json", args.json), ("--plot", args.plot)):
        # a typo in the path should not cost a minute of measuring first
        if path and not os.path.isdir(os.path.dirname(os.path.abspath(path))):
            parser.error(f"{option} {path}: the folder {os.path.dirname(os.path.abspath(path))!r} does not exist; create it or pick another path")
    if args.plot:
        try:
            _bench.require_matplotlib()  # fail before minutes of measuring, not after
        except _bench.PlotUnavailableError as exc:
            parser.error(str(exc))
    # a file or a pipe gets the whole table on one line per row, not 80 columns
    out = Console() if sys.stdout.isatty() else Console(width=220)
    err = Console(stderr=True)
    for name, why in _bench.available_workloads()[1].items():
        err.print(f"unifex bench: the {name!r} workload is skipped: {why}")
    with Progress(
        TextColumn("[bold]unifex bench"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
        console=err,
        transient=True,
    ) as progress:
        task = progress.add_task("starting", total=_bench.total_steps(kinds, args.quick))

        def say(description: str, advance: int) -> None:
            progress.update(task, description=description, advance=advance)

        report = _bench.run(kinds, quick=args.quick, progress=say)
    for table in _bench.render_tables(report, out.width):
        out.print(table)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(report.to_json(), f, indent=2)
            f.write("\n")
        err.print(f"wrote {args.json}")
    if args.plot:
        _bench.plot(report, args.plot)
        err.print(f"wrote {args.plot}")
    failures = report.failures()
    if failures:
        err.print(f"[red]{len(failures)} cell(s) have no number[/red] ({', '.join(failures)}): the table says why")
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``unifex`` console script."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "bench":
        return bench(args, parser)
    parser.print_help(sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
