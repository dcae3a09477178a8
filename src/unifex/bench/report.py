"""The results of a ``unifex bench`` run (``Report``: one ``Column`` of ``Cell``s
per kind and per raw library) and their three faces: table, JSON and bar chart.

Nothing here measures; ``runner.run`` fills a ``Report``. ``rich`` draws the
table; matplotlib, an optional dependency, is imported only by ``plot``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
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
    "figure",
    "ratio_texts",
    "render_table",
    "render_tables",
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


def ratio_texts(report: Report, kind: str, workload: str) -> list[str]:
    """``x0.80 TPE`` (with a multiplication sign) for each raw library ``kind`` is compared with."""
    out = []
    for raw in report.kinds[kind].raws:
        ratio = report.ratio(kind, raw, workload)
        if ratio is not None:
            out.append(f"{TIMES}{format_ratio(ratio)} {RAW[raw].label}")
    return out


def cell_text(report: Report, kind: str, workload: str, sep: str = " · ", limit: int = 48) -> str:
    """``29.1 µs`` over ``x1.05 TPE`` (ratios joined by ``sep``); or the error, cut short."""
    column = report.kinds[kind]
    value = report.value(column, workload)
    if value is None:
        cell = column.cells.get(workload)
        error = (cell.error if cell is not None else None) or column.error or "no result"
        return "error: " + (error if len(error) <= limit else error[: limit - 1] + "…")
    ratios = ratio_texts(report, kind, workload)
    return format_value(value, by_name(workload).unit) + ("\n" + sep.join(ratios) if ratios else "")


def machine_line(machine: dict[str, Any]) -> str:
    libs = ", ".join(f"{k} {v}" for k, v in machine.get("libraries", {}).items())
    load = machine.get("load_average_1min")
    text = f"{machine['cpu_count']} CPUs ({machine['cpu_model']}), {machine['implementation']} {machine['python']}, {machine['platform']}"
    if libs:
        text += f"; {libs}"
    if load is not None:
        text += f"; load average {load} at the start"
    return text


def _caption(report: Report) -> str:
    raws = dict.fromkeys(r for family in report.raws.values() for r in family)
    text = (
        f"Median of the rounds. {TIMES}R = unifex time ÷ raw library time for the same work, side by side "
        "(below 1.00: unifex faster). " + "; ".join(f"{RAW[r].label} = {RAW[r].title}" for r in raws) + "."
    )
    if report.skipped:
        text += " Not measured: " + "; ".join(f"{name} ({why})" for name, why in report.skipped.items()) + "."
    return text + f"\nMachine: {machine_line(report.machine)}"


def _grid(report: Report, kinds: Sequence[str]) -> list[list[str]]:
    """The table's text as rows of markup strings, the header row first."""
    header = ["workload"]
    for kind in kinds:
        size = report.kinds[kind].size
        header.append(kind if size is None else f"{kind}\n[dim]size {size}[/dim]")
    rows = [header]
    first = next(iter(report.params.values()), None)
    for w in report.workloads:
        label = w.describe(first) if first is not None else w.name
        better = "higher" if w.higher_is_better else "lower"
        # one ratio a line keeps the columns narrow: seven kinds fit in 100 columns in two tables
        rows.append([f"{label}\n[dim]{w.unit}, {better} is better[/dim]", *(cell_text(report, k, w.name, sep="\n") for k in kinds)])
    return rows


#: each column's left and right padding; the borders take one more column each, plus one
_PAD = 2


def _spans(console: Any, grid: list[list[str]]) -> tuple[list[int], list[int]]:
    """Each column's narrowest width and its widest useful one. The workload
    column may wrap between words; a kind's lines stay whole (``10,773 µs``,
    ``x0.24 mp.Pool``), so its narrowest is its longest line."""
    from rich.measure import Measurement
    from rich.text import Text

    lows, highs = [], []
    for i, column in enumerate(zip(*grid, strict=True)):
        spans = [Measurement.get(console, console.options, Text.from_markup(cell)) for cell in column]
        highs.append(max(m.maximum for m in spans) + _PAD)
        lows.append(max(m.minimum for m in spans) + _PAD if i == 0 else highs[-1])
    return lows, highs


def _fit(lows: list[int], highs: list[int], room: int) -> list[int]:
    """Widths that sum to at most ``room``: the widest columns give way first,
    none below its narrowest (rich's own squeeze would cut words instead)."""
    if sum(highs) <= room:
        return highs
    lo, hi = 0, max(highs)
    while lo < hi:  # the highest cap on the widths that still fits
        cap = (lo + hi + 1) // 2
        if sum(max(a, min(b, cap)) for a, b in zip(lows, highs, strict=True)) <= room:
            lo = cap
        else:
            hi = cap - 1
    return [max(a, min(b, lo)) for a, b in zip(lows, highs, strict=True)]


def _table(grid: list[list[str]], widths: list[int] | None, title: str | None, caption: str | None) -> Any:
    from rich.table import Table

    table = Table(title=title, caption=caption, caption_justify="left", show_lines=True)
    for i, head in enumerate(grid[0]):
        width = None if widths is None else widths[i] - _PAD
        table.add_column(head, style="bold" if i == 0 else None, justify="left" if i == 0 else "right", width=width)
    for row in grid[1:]:
        table.add_row(*row)
    return table


def render_tables(report: Report, width: int | None = None) -> list[Any]:
    """The report as ``rich`` tables (rows workloads, columns kinds): one table,
    or, where ``width`` columns cannot hold every kind without cutting a word,
    the kinds split over as few tables as fit, each with the workload column."""
    mode = "quick run" if report.quick else "full run"
    title = f"unifex bench ({mode}, {report.elapsed:.0f} s)"
    kinds = list(report.kinds)
    if width is None:
        return [_table(_grid(report, kinds), None, title, _caption(report))]
    from rich.console import Console

    console = Console(width=width)
    layout: list[tuple[list[list[str]], list[int] | None]] = []
    for n in range(1, max(1, len(kinds)) + 1):
        size = math.ceil(len(kinds) / n) or 1
        grids = [_grid(report, kinds[i : i + size]) for i in range(0, max(1, len(kinds)), size)]
        spans = [_spans(console, grid) for grid in grids]
        rooms = [width - len(grid[0]) - 1 for grid in grids]  # less the borders
        layout = [(grid, _fit(lows, highs, room)) for grid, (lows, highs), room in zip(grids, spans, rooms, strict=True)]
        if all(sum(lows) <= room for (lows, _), room in zip(spans, rooms, strict=True)):
            break
    else:
        # not even one kind beside the workload column fits: let rich squeeze
        layout = [(grid, None) for grid, _ in layout]
    last = len(layout) - 1
    return [_table(grid, widths, title if i == 0 else None, _caption(report) if i == last else None) for i, (grid, widths) in enumerate(layout)]


def render_table(report: Report) -> Any:
    """The report as one ``rich`` table, however wide."""
    return render_tables(report)[0]


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


def figure(report: Report) -> Any:
    """The table as a matplotlib ``Figure``: one panel per workload, one bar per
    kind (blue) followed by one per raw library it wraps (grey, hatched, named
    beside it), on a linear axis from zero; each bar carries its value and each
    raw library's bar the ratio of the kind above it to that library."""
    require_matplotlib()
    from matplotlib.figure import Figure

    workloads = report.workloads
    cols = 2
    rows = max(1, math.ceil(len(workloads) / cols))
    bars = sum(1 + sum(1 for raw in c.raws if report.raws.get(c.family, {}).get(raw) is not None) for c in report.kinds.values())
    fig = Figure(figsize=(8 * cols, rows * (1.2 + 0.28 * bars)), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    first = next(iter(report.params.values()))
    for ax, w in zip(axes.flat, workloads, strict=False):
        _panel(ax, report, w, first)
    for ax in list(axes.flat)[len(workloads) :]:
        ax.set_visible(False)
    fig.suptitle(
        f"unifex bench ({'quick' if report.quick else 'full'} run): unifex kinds (blue) beside the raw library each wraps (grey).\n"
        f"{TIMES}R on a raw library's bar = the kind above ÷ that library, in time for the same work (below 1: unifex faster).\n"
        f"{machine_line(report.machine)}",
        fontsize=9,
    )
    return fig


def _panel(ax: Any, report: Report, w: Workload, p: Params) -> None:
    labels: list[str] = []
    values: list[float] = []
    texts: list[str] = []
    raw_rows: list[bool] = []
    for kind, column in report.kinds.items():
        value = report.value(column, w.name)
        labels.append(kind)
        values.append(value or 0.0)
        texts.append(format_value(value, w.unit) if value is not None else cell_text(report, kind, w.name))
        raw_rows.append(False)
        for raw in column.raws:
            raw_column = report.raws.get(column.family, {}).get(raw)
            raw_value = None if raw_column is None else report.value(raw_column, w.name)
            if raw_value is None:
                continue  # that library has no idiom for this workload, or it failed (the table says why)
            ratio = report.ratio(kind, raw, w.name)
            labels.append(RAW[raw].label)
            values.append(raw_value)
            texts.append(format_value(raw_value, w.unit) + ("" if ratio is None else f"   {kind} {TIMES}{format_ratio(ratio)}"))
            raw_rows.append(True)
    ys = list(range(len(labels)))
    colors = ["#c8c8c8" if is_raw else "#3b75af" for is_raw in raw_rows]
    container = ax.barh(ys, values, color=colors, edgecolor=["#777777" if is_raw else "#3b75af" for is_raw in raw_rows])
    for patch, is_raw in zip(container.patches, raw_rows, strict=True):
        if is_raw:
            patch.set_hatch("//")
    ax.bar_label(container, labels=texts, padding=3, fontsize=7)
    ax.set_yticks(ys, labels)
    for tick, is_raw in zip(ax.get_yticklabels(), raw_rows, strict=True):
        tick.set_color("#555555" if is_raw else "black")
        tick.set_fontweight("normal" if is_raw else "bold")
    ax.invert_yaxis()  # the first kind on top, its raw libraries under it
    ax.set_xscale("linear")
    from matplotlib.ticker import EngFormatter, StrMethodFormatter

    # 2M rather than 0.2 with an "x 1e7" in the corner; times as plain numbers, 20,000
    ax.xaxis.set_major_formatter(EngFormatter(sep="") if w.metric == "rate" else StrMethodFormatter("{x:,g}"))
    top = max(values, default=0.0)
    # room on the right for the longest label; a linear axis from zero, so bar lengths compare
    ax.set_xlim(0, top * 1.6 if top > 0 else 1.0)
    better = "higher" if w.higher_is_better else "lower"
    ax.set_title(f"{w.describe(p)}\n{w.unit}, {better} is better", fontsize=9)
    ax.set_xlabel(w.unit, fontsize=8)
    ax.tick_params(labelsize=8)


def plot(report: Report, path: str) -> None:
    """Save ``figure(report)`` to ``path`` (PNG, or any format matplotlib knows by the extension)."""
    figure(report).savefig(path, dpi=110)
