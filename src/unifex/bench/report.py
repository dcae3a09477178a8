"""The results of a ``unifex bench`` run (``Report``: one ``Column`` of ``Cell``s
per kind and per raw library) and their three faces: table, JSON and bar chart.

Nothing here measures; ``runner.run`` fills a ``Report``. ``rich`` draws the
table; matplotlib, an optional dependency, is imported only by ``plot``.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from typing import Any

import unifex

from .subjects import RAW
from .workloads import TIMES, WORKLOADS, Params, Workload, by_name

__all__ = [
    "Cell",
    "Column",
    "PlotUnavailableError",
    "Report",
    "cell_text",
    "format_ratio",
    "format_value",
    "machine_line",
    "markdown_table",
    "plot",
    "render_table",
    "require_matplotlib",
]


@dataclass
class Cell:
    """One subject on one workload: seconds per round, or why it failed."""

    samples: list[float] = field(default_factory=list)
    error: str | None = None

    @property
    def seconds(self) -> float | None:
        return statistics.median(self.samples) if self.samples and self.error is None else None


@dataclass
class Column:
    """A kind or a raw library: its size and its cells."""

    name: str
    family: str
    size: int | None = None
    error: str | None = None
    cells: dict[str, Cell] = field(default_factory=dict)
    #: the raw libraries this kind is compared with (kinds only)
    raws: tuple[str, ...] = ()


@dataclass
class Report:
    quick: bool
    machine: dict[str, Any]
    kinds: dict[str, Column] = field(default_factory=dict)
    #: family -> raw library -> its column (a raw library is measured in each family that uses it)
    raws: dict[str, dict[str, Column]] = field(default_factory=dict)
    params: dict[str, Params] = field(default_factory=dict)
    elapsed: float = 0.0
    #: workload -> why it was not run (an optional module is missing)
    skipped: dict[str, str] = field(default_factory=dict)

    @property
    def workloads(self) -> tuple[Workload, ...]:
        """The workloads this run measured, in table order."""
        return tuple(w for w in WORKLOADS if w.name not in self.skipped)

    def value(self, column: Column, workload: str) -> float | None:
        cell = column.cells.get(workload)
        seconds = None if cell is None else cell.seconds
        if seconds is None or seconds <= 0:
            return None
        return by_name(workload).value(seconds, self.params[column.family])

    def ratio(self, kind: str, raw: str, workload: str) -> float | None:
        """unifex time / raw library time (below 1: unifex faster)."""
        mine = self.kinds[kind].cells.get(workload)
        column = self.raws.get(self.kinds[kind].family, {}).get(raw)
        theirs = None if column is None else column.cells.get(workload)
        if mine is None or theirs is None or mine.seconds is None or theirs.seconds is None or theirs.seconds <= 0:
            return None
        return mine.seconds / theirs.seconds

    def failures(self) -> list[str]:
        """``kind/workload`` for every unifex cell that has no number."""
        out = []
        for kind, column in self.kinds.items():
            for w in self.workloads:
                if self.value(column, w.name) is None:
                    out.append(f"{kind}/{w.name}")
        return out

    def to_json(self) -> dict[str, Any]:
        def cells(column: Column, ratios: bool) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for w in self.workloads:
                cell = column.cells.get(w.name)
                if cell is None:
                    continue
                p = self.params[column.family]
                entry: dict[str, Any] = {
                    "median": self.value(column, w.name),
                    "unit": w.unit,
                    "median_seconds_per_round": cell.seconds,
                    "samples_seconds_per_round": cell.samples,
                    "error": cell.error,
                }
                if w.metric != "wall":
                    entry["count_per_round"] = w.count(p)
                if ratios:
                    entry["ratios"] = {raw: self.ratio(column.name, raw, w.name) for raw in column.raws}
                out[w.name] = entry
            return out

        return {
            "unifex_version": unifex.__version__,
            "quick": self.quick,
            "elapsed_seconds": round(self.elapsed, 2),
            "machine": self.machine,
            "ratio": "unifex seconds per round / raw library seconds per round, measured side by side; below 1 unifex is faster",
            "workloads": {
                w.name: {"unit": w.unit, "higher_is_better": w.higher_is_better, "description": {fam: w.describe(p) for fam, p in self.params.items()}}
                for w in self.workloads
            },
            "skipped_workloads": dict(self.skipped),
            "params": {fam: vars(p) for fam, p in self.params.items()},
            "kinds": {
                k: {"family": c.family, "size": c.size, "error": c.error, "raw": list(c.raws), "results": cells(c, True)} for k, c in self.kinds.items()
            },
            "raw": {
                fam: {r: {"size": c.size, "error": c.error, "title": RAW[r].title, "results": cells(c, False)} for r, c in raws.items()}
                for fam, raws in self.raws.items()
            },
        }




def format_value(value: float, unit: str) -> str:
    if unit == "tasks/s":
        if value >= 1e6:
            return f"{value / 1e6:.2f} M/s"
        if value >= 1e3:
            return f"{value / 1e3:.1f} k/s"
        return f"{value:.0f} /s"
    if value >= 100:
        text = f"{value:,.0f}"
    elif value >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.2f}"
    return f"{text} {unit.split('/', 1)[0]}"


def format_ratio(ratio: float) -> str:
    """Two decimals; two significant digits below 0.1, so 0.003 does not read as 0.00."""
    return f"{ratio:.2f}" if ratio >= 0.1 else f"{ratio:.2g}"


def cell_text(report: Report, kind: str, workload: str, limit: int = 48) -> str:
    """``29.1 µs`` over ``x1.05 TPE`` (with a multiplication sign); or the error, cut short."""
    column = report.kinds[kind]
    value = report.value(column, workload)
    if value is None:
        cell = column.cells.get(workload)
        error = (cell.error if cell is not None else None) or column.error or "no result"
        return "error: " + (error if len(error) <= limit else error[: limit - 1] + "…")
    w = by_name(workload)
    lines = [format_value(value, w.unit)]
    ratios = []
    for raw in column.raws:
        ratio = report.ratio(kind, raw, workload)
        if ratio is not None:
            ratios.append(f"{TIMES}{format_ratio(ratio)} {RAW[raw].label}")
    if ratios:
        lines.append(" · ".join(ratios))
    return "\n".join(lines)


def machine_line(machine: dict[str, Any]) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in machine.get("libraries", {}).items())
    load = machine.get("load_average_1min")
    text = f"{machine['cpu_count']} CPUs ({machine['cpu_model']}), {machine['implementation']} {machine['python']}, {machine['platform']}"
    if libs:
        text += f"; {libs}"
    if load is not None:
        text += f"; load average {load} at the start"
    return text


def render_table(report: Report) -> Any:
    """The report as one ``rich`` table: rows workloads, columns kinds."""
    from rich.table import Table

    mode = "quick run" if report.quick else "full run"
    table = Table(
        title=f"unifex bench ({mode}, {report.elapsed:.0f} s)",
        caption=(
            f"median of the rounds; {TIMES}R = unifex time ÷ raw library time for the same work, side by side "
            "(below 1.00: unifex faster). "
            + "; ".join(f"{RAW[r].label} = {RAW[r].title}" for r in dict.fromkeys(r for raws in report.raws.values() for r in raws))
            + f".\nMachine: {machine_line(report.machine)}"
        ),
        show_lines=True,
    )
    table.add_column("workload", style="bold")
    for kind, column in report.kinds.items():
        size = f" (size {column.size})" if column.size is not None else ""
        table.add_column(f"{kind}{size}", justify="right")
    first = next(iter(report.params.values()), None)
    for w in report.workloads:
        label = w.describe(first) if first is not None else w.name
        better = "higher" if w.higher_is_better else "lower"
        table.add_row(f"{label}\n[dim]{w.unit}, {better} is better[/dim]", *(cell_text(report, k, w.name) for k in report.kinds))
    return table


def markdown_table(report: Report) -> str:
    """The same table in Markdown, for the README."""
    first = next(iter(report.params.values()))
    kinds = list(report.kinds)
    head = "| workload | " + " | ".join(f"{k} (size {report.kinds[k].size})" for k in kinds) + " |"
    rows = [head, "|" + "---|" * (len(kinds) + 1)]
    for w in report.workloads:
        cells = [cell_text(report, k, w.name).replace("\n", "<br>") for k in kinds]
        rows.append(f"| {w.describe(first)} ({w.unit}) | " + " | ".join(cells) + " |")
    return "\n".join(rows)


class PlotUnavailableError(RuntimeError):
    """``--plot`` was asked for but matplotlib is not installed."""


def require_matplotlib() -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise PlotUnavailableError(
            "--plot needs matplotlib, which is not installed; install it with: pip install 'unifex[plot]' (or run without --plot)"
        ) from None


def plot(report: Report, path: str) -> None:
    """A bar chart of the table: one panel per workload, each kind's bar beside
    its raw library's (hatched), on a log scale."""
    require_matplotlib()
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = list(report.kinds)
    cols = 2
    rows = math.ceil(len(WORKLOADS) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(6 * cols, 3.2 * rows), squeeze=False)
    first = next(iter(report.params.values()))
    for ax, w in zip(axes.flat, WORKLOADS, strict=False):
        xs, mine, theirs = [], [], []
        for i, kind in enumerate(kinds):
            xs.append(i)
            mine.append(report.value(report.kinds[kind], w.name) or 0.0)
            column = report.kinds[kind]
            raw_column = report.raws.get(column.family, {}).get(column.raws[0]) if column.raws else None
            raw_value = report.value(raw_column, w.name) if raw_column is not None else None
            theirs.append(raw_value or 0.0)
        width = 0.4
        ax.bar([x - width / 2 for x in xs], mine, width, label="unifex", color="#3b75af")
        ax.bar([x + width / 2 for x in xs], theirs, width, label="raw library", color="#c8c8c8", hatch="//", edgecolor="#777777")
        ax.set_xticks(xs)
        ax.set_xticklabels(kinds)
        if any(v > 0 for v in mine + theirs):
            ax.set_yscale("log")
        better = "higher" if w.higher_is_better else "lower"
        ax.set_title(f"{w.describe(first)}\n{w.unit}, {better} is better", fontsize=9)
        ax.tick_params(labelsize=8)
    for ax in list(axes.flat)[len(WORKLOADS) :]:
        ax.set_visible(False)
    axes.flat[0].legend(fontsize=8)
    fig.suptitle(f"unifex bench: {machine_line(report.machine)}", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
