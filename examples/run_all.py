"""Run every example under every usable kind and print a table: example x kind,
pass/fail and wall time, to see at a glance which model suits which program.

    python examples/run_all.py                       # everything
    python examples/run_all.py --kinds thread,gevent --examples crawler,ping_pong
    python examples/run_all.py --jobs 3              # faster; times then include contention

Each example is a separate program run with ``--backend KIND`` and its default
``--size``. It passes when it exits 0 and prints exactly the output its
docstring shows (the block after ``Output ...::``). It is "n/a" when it exits
0 with the not-applicable line for a kind its ``NOT_APPLICABLE`` table names.
Anything else fails; the reasons are printed under the table. The exit status
is 1 when anything failed. ``tests/test_examples.py`` uses the same functions.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

EXAMPLES_DIR = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, EXAMPLES_DIR)  # for _common when imported from the tests

from _common import NOT_APPLICABLE_MARKER  # noqa: E402

import unifex  # noqa: E402

#: files in examples/ that are not example programs
NOT_EXAMPLES = frozenset({"_common.py", "run_all.py"})
#: seconds one example may take before it counts as hung
DEFAULT_TIMEOUT = 120.0


@dataclass(frozen=True)
class Outcome:
    example: str
    kind: str
    status: str  # "pass", "n/a", "FAIL" or "TIMEOUT"
    seconds: float
    detail: str = ""  # why it failed: the difference, or the end of stderr

    @property
    def ok(self) -> bool:
        return self.status in ("pass", "n/a")


def discover() -> list[str]:
    """The example names (file names without ``.py``), sorted."""
    return sorted(name[:-3] for name in os.listdir(EXAMPLES_DIR) if name.endswith(".py") and name not in NOT_EXAMPLES)


def usable_kinds() -> list[str]:
    """Every kind usable here, in the order of ``unifex.backends()``."""
    return [kind for kind, usable in unifex.backends().items() if usable]


def _module(example: str) -> ast.Module:
    with open(os.path.join(EXAMPLES_DIR, example + ".py"), encoding="utf-8") as f:
        return ast.parse(f.read())


def expected_output(example: str) -> str:
    """The output the example's docstring promises: the indented block after the
    line that starts with ``Output`` and ends with ``::``."""
    doc = ast.get_docstring(_module(example), clean=True) or ""
    lines = doc.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Output") and line.rstrip().endswith("::"):
            block: list[str] = []
            for text in lines[i + 1 :]:
                if text.strip() and not text.startswith("    "):
                    break
                block.append(text)
            return textwrap.dedent("\n".join(block)).strip("\n") + "\n"
    raise ValueError(f"examples/{example}.py: its docstring has no 'Output ...::' block to check the program against; add one")


def not_applicable(example: str) -> dict[str, str]:
    """The example's ``NOT_APPLICABLE`` table: kind -> why it cannot run there."""
    for node in _module(example).body:
        targets: list[ast.expr]
        if isinstance(node, ast.AnnAssign):
            targets, value = [node.target], node.value
        elif isinstance(node, ast.Assign):
            targets, value = node.targets, node.value
        else:
            continue
        if value is not None and any(isinstance(t, ast.Name) and t.id == "NOT_APPLICABLE" for t in targets):
            table = ast.literal_eval(value)
            if isinstance(table, dict):
                return {str(k): str(v) for k, v in table.items()}
    raise ValueError(f"examples/{example}.py has no NOT_APPLICABLE table (a dict literal, empty when every kind can run it); add one")


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _head(text: str, lines: int = 80) -> str:
    return "\n".join(text.strip().splitlines()[:lines])


def run_one(example: str, kind: str, timeout: float = DEFAULT_TIMEOUT) -> Outcome:
    """Run ``examples/<example>.py --backend <kind>`` and judge its output."""
    cmd = [sys.executable, os.path.join(EXAMPLES_DIR, example + ".py"), "--backend", kind]
    # with faulthandler on, SIGABRT makes a hung program print where each of its threads is
    env = {**os.environ, "PYTHONFAULTHANDLER": "1"}
    started = time.perf_counter()
    # its own session, so that a hung program's workers (its children) can be stopped with it
    with subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    ) as proc:
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGABRT)
            try:
                out, err = proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                out, err = proc.communicate()
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            return Outcome(example, kind, "TIMEOUT", time.perf_counter() - started, f"no exit within {timeout:.0f} s; where it was (innermost call first):\n{_head(err)}")
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        return Outcome(example, kind, "FAIL", seconds, f"exit status {proc.returncode}\n{_tail(err)}")
    if out.startswith(NOT_APPLICABLE_MARKER):
        if kind in not_applicable(example):
            return Outcome(example, kind, "n/a", seconds, out.strip())
        return Outcome(example, kind, "FAIL", seconds, f"said it cannot run under {kind!r}, but its NOT_APPLICABLE table does not name that kind:\n{out.strip()}")
    if kind in not_applicable(example):
        return Outcome(example, kind, "FAIL", seconds, f"NOT_APPLICABLE names {kind!r}, but the program ran instead of saying so")
    expected = expected_output(example)
    if out != expected:
        return Outcome(example, kind, "FAIL", seconds, f"output differs from the docstring's:\n--- expected\n{expected}--- got\n{out}{_tail(err)}")
    return Outcome(example, kind, "pass", seconds)


def run_many(pairs: Iterable[tuple[str, str]], jobs: int = 1, timeout: float = DEFAULT_TIMEOUT) -> dict[tuple[str, str], Outcome]:
    """Run each (example, kind), ``jobs`` at a time."""
    todo = list(pairs)
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        outcomes = pool.map(lambda pair: run_one(pair[0], pair[1], timeout), todo)
        return {(o.example, o.kind): o for o in outcomes}


def table(examples: list[str], kinds: list[str], outcomes: dict[tuple[str, str], Outcome]) -> str:
    def cell(o: Outcome) -> str:
        return "n/a" if o.status == "n/a" else f"{o.status} {o.seconds:5.2f}s"

    width = max(len(e) for e in examples) + 2
    col = max(14, *(len(k) + 2 for k in kinds))
    lines = ["example".ljust(width) + "".join(k.ljust(col) for k in kinds)]
    lines.append("-" * (width + col * len(kinds)))
    for e in examples:
        lines.append(e.ljust(width) + "".join(cell(outcomes[e, k]).ljust(col) for k in kinds))
    return "\n".join(lines)


def _pick(wanted: str | None, available: list[str], what: str) -> list[str]:
    if not wanted:
        return available
    names = [w.strip() for w in wanted.split(",") if w.strip()]
    unknown = [n for n in names if n not in available]
    if unknown:
        raise SystemExit(f"unknown or unusable {what}: {', '.join(unknown)}; available: {', '.join(available)}")
    return names


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").strip().splitlines()[0])
    parser.add_argument("--kinds", help="comma-separated kinds (default: every usable kind)")
    parser.add_argument("--examples", help="comma-separated example names (default: all)")
    parser.add_argument("--jobs", type=int, default=1, help="programs run at once (default 1, so the times are not skewed)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help=f"seconds per program (default {DEFAULT_TIMEOUT:.0f})")
    args = parser.parse_args()
    kinds = _pick(args.kinds, usable_kinds(), "kinds")
    examples = _pick(args.examples, discover(), "examples")
    unusable = [kind for kind, usable in unifex.backends().items() if not usable]
    outcomes = run_many([(e, k) for e in examples for k in kinds], args.jobs, args.timeout)
    print(table(examples, kinds, outcomes))
    print("\npass: the output matches the example's docstring; n/a: the model cannot run that program (the example says why)")
    if unusable:
        print(f"not usable here (dependency missing): {', '.join(unusable)}")
    failed = [o for o in outcomes.values() if not o.ok]
    for o in failed:
        print(f"\n{o.status}: {o.example} under {o.kind}\n{textwrap.indent(o.detail, '    ')}")
    why = sorted({(e, k, o.detail) for (e, k), o in outcomes.items() if o.status == "n/a"})
    if why:
        print("\nnot applicable:")
        for e, k, text in why:
            print(f"  {e} under {k}: {text.split(': ', 1)[-1]}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
