"""One ``unifex bench`` run: group the kinds into families, start each family,
take the rounds of every workload interleaved across its subjects, close it.

``run`` returns a ``report.Report``; ``plan`` and ``total_steps`` tell the
caller (the command's progress bar, the pytest-benchmark suite) what it will do.
"""

from __future__ import annotations

import contextlib
import gc
import os
import platform
from collections.abc import Callable, Sequence
from typing import Any

from .report import Cell, Column, Report
from .subjects import Family, Subject, brief, family_of, open_family
from .workloads import Params, Workload, available_workloads, params_for, perf

__all__ = ["ProgressFn", "machine_info", "plan", "run", "total_steps"]


def machine_info() -> dict[str, Any]:
    """What the numbers were measured on."""
    from importlib.metadata import PackageNotFoundError, version

    libraries = {}
    for name in ("gevent", "greenlet", "distributed"):
        try:
            libraries[name] = version(name)
        except PackageNotFoundError:
            pass
    cpu_model = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as f:
        for line in f:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    info: dict[str, Any] = {
        "cpu_count": os.cpu_count(),
        "cpu_model": cpu_model,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "libraries": libraries,
    }
    if hasattr(os, "getloadavg"):
        info["load_average_1min"] = round(os.getloadavg()[0], 2)
    return info


#: progress(description, advance)
ProgressFn = Callable[[str, int], None]


def plan(kinds: Sequence[str], quick: bool) -> list[tuple[Family, list[str], Params]]:
    """Families to run, each with its kinds, in the order the kinds were given."""
    out: dict[str, tuple[Family, list[str], Params]] = {}
    for kind in kinds:
        fam = family_of(kind)
        if fam.name not in out:
            out[fam.name] = (fam, [], params_for(fam.cost, quick))
        out[fam.name][1].append(kind)
    return list(out.values())


def total_steps(kinds: Sequence[str], quick: bool) -> int:
    """Progress steps of a run: one per family start and one per measured round."""
    steps = 0
    for fam, fam_kinds, p in plan(kinds, quick):
        subjects = len(fam_kinds) + len(fam.raws)
        steps += 1 + sum(w.rounds(p) for w in available_workloads()[0]) * subjects
    return steps


def run(kinds: Sequence[str], quick: bool = False, progress: ProgressFn | None = None) -> Report:
    """Measure ``kinds`` on every workload beside their raw libraries."""
    began = perf()
    report = Report(quick=quick, machine=machine_info(), skipped=available_workloads()[1])
    say: ProgressFn = progress or (lambda description, advance: None)
    for fam, fam_kinds, p in plan(kinds, quick):
        report.params[fam.name] = p
        for kind in fam_kinds:
            report.kinds[kind] = Column(kind, fam.name, raws=fam.raws)
        report.raws[fam.name] = {raw: Column(raw, fam.name) for raw in fam.raws}
        say(f"{fam.name}: starting {', '.join([*fam_kinds, *fam.raws])}", 0)
        _run_family(report, fam, fam_kinds, p, say)
    report.elapsed = perf() - began
    return report


def _run_family(report: Report, fam: Family, kinds: list[str], p: Params, say: ProgressFn) -> None:
    names = [*kinds, *fam.raws]
    columns = {**{k: report.kinds[k] for k in kinds}, **report.raws[fam.name]}
    with open_family(fam, kinds, p) as session:
        say(f"{fam.name}: started", 1)
        for name, why in session.errors.items():
            columns[name].error = why
        for name, size in session.sizes.items():
            columns[name].size = size
        broken = session.broken
        alive = {s.name: s for s in session.subjects}
        for w in report.workloads:
            rounds = w.rounds(p)
            for r in range(rounds):
                # alternate the order so a drift in machine load does not favour one side
                order = names if r % 2 == 0 else names[::-1]
                for name in order:
                    say(f"{name}: {w.describe(p)} ({r + 1}/{rounds})", 1)
                    _one_round(columns[name], alive.get(name), w, p, broken)


def _one_round(column: Column, subject: Subject | None, w: Workload, p: Params, broken: set[str]) -> None:
    cell = column.cells.setdefault(w.name, Cell())
    if cell.error is not None:
        return
    if subject is None:
        cell.error = column.error or "not started"
        return
    if w.name not in subject.supported:
        cell.error = "n/a"
        return
    if subject.name in broken:
        cell.error = "skipped: an earlier round hung"
        return
    gc.collect()
    try:
        seconds = subject.measure(w.name, p)
    except Exception as exc:
        cell.error = brief(exc)
        if isinstance(exc, TimeoutError):
            broken.add(subject.name)
        return
    if not seconds > 0:
        cell.error = f"measured a non-positive time ({seconds!r}): the clock is too coarse for this workload"
        return
    cell.samples.append(seconds)
