"""What ``unifex bench`` shows a person: the bar chart (linear axes from zero, the
value on every bar, the raw library named beside each kind, the ratios) and the
terminal table in 100 columns (no label cut).

The report rendered here holds every built-in kind with the figures of a full
run (the README's), so the chart and the table face the real spread of values:
dask's milliseconds beside greenlet's microseconds, three raw libraries beside
``process``, a raw library with no idiom for most workloads (joblib).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from rich.console import Console

from unifex.bench import Cell, Column, Report, family_of, params_for, render_tables
from unifex.bench.report import cell_text, format_ratio, format_value
from unifex.bench.subjects import RAW, raw_supports
from unifex.bench.workloads import TIMES, Workload

KINDS = ("thread", "pool", "serial", "process", "gevent", "greenlet", "dask")

#: a full run's medians in display units (µs/task, tasks/s, ms, ms, ms, µs/op x3)
FIGURES: dict[str, tuple[float, ...]] = {
    "thread": (41.1, 195_200, 87.4, 29.0, 41.0, 0.13, 1.34, 0.03),
    "pool": (37.3, 136_600, 87.4, 29.5, 37.0, 0.13, 1.33, 0.03),
    "serial": (1.18, 638_300, 510, 28.5, 31.0, 0.14, 1.35, 0.03),
    "process": (82.6, 8_930_000, 261, 15.8, 1_227, 0.28, 3.50, 31.1),
    "gevent": (5.31, 287_400, 10.2, 27.9, 27.0, 0.25, 0.09, 0.04),
    "greenlet": (4.96, 211_600, 5.64, 28.3, 36.0, 0.48, 0.46, 0.04),
    "dask": (10_773, 1_570_000, 807, 61.2, 2_418, 802, 791, 783),
}
#: raw library time = kind time / ratio, a different ratio for every raw library
RATIOS = {"ThreadPoolExecutor": 0.8, "ProcessPoolExecutor": 0.4, "multiprocessing.Pool": 1.25, "joblib": 3.7, "gevent.pool.Pool": 0.31, "dask client": 0.97}


def _seconds(w: Workload, value: float, count: int) -> float:
    """Seconds per round for a value in ``w``'s display unit (the inverse of ``Workload.value``)."""
    if w.metric == "rate":
        return count / value
    if w.metric == "wall":
        return value / 1e3
    return value * 1e-6 * count


@pytest.fixture(scope="module")
def report() -> Report:
    rep = Report(quick=False, machine={"cpu_count": 2, "cpu_model": "Intel Xeon", "implementation": "CPython", "python": "3.11.7", "platform": "Linux"})
    rep.elapsed = 61.0
    order = [w.name for w in rep.workloads]
    assert order == ["overhead", "map", "io", "cpu", "large", "lock", "queue", "dict"]
    for kind in KINDS:
        fam = family_of(kind)
        p = rep.params.setdefault(fam.name, params_for(fam.cost, quick=False))
        column = rep.kinds[kind] = Column(kind, fam.name, size=2, raws=fam.raws)
        raws = rep.raws.setdefault(fam.name, {raw: Column(raw, fam.name, size=2) for raw in fam.raws})
        for w, value in zip(rep.workloads, FIGURES[kind], strict=True):
            seconds = _seconds(w, value, w.count(p))
            column.cells[w.name] = Cell([seconds])
            for raw, raw_column in raws.items():
                supported = raw_supports(raw, w.name)
                raw_column.cells.setdefault(w.name, Cell([seconds / RATIOS[raw]] if supported else [], None if supported else "n/a"))
    return rep


def test_plot_has_linear_axes_from_zero_values_on_bars_raw_libraries_and_ratios(report: Report, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="the chart needs the plot extra: pip install 'unifex[plot]'")
    from unifex.bench import figure, plot

    fig = figure(report)
    panels = [ax for ax in fig.axes if ax.get_visible()]
    assert len(panels) == len(report.workloads)
    first = next(iter(report.params.values()))
    for ax, w in zip(panels, report.workloads, strict=True):
        assert w.describe(first) in ax.get_title()
        assert ax.get_xscale() == "linear", w.name
        assert ax.get_xlim()[0] == 0, w.name
        bars = ax.patches
        texts = [t.get_text() for t in ax.texts]
        ticks = [t.get_text() for t in ax.get_yticklabels()]
        assert len(bars) == len(texts) == len(ticks)
        # every bar starts at zero and is as long as its value
        assert all(bar.get_x() == 0 for bar in bars)
        expected_ticks: list[str] = []
        for kind in KINDS:
            column = report.kinds[kind]
            i = len(expected_ticks)
            expected_ticks.append(kind)
            value = report.value(column, w.name)
            assert value is not None
            assert bars[i].get_width() == pytest.approx(value)
            assert texts[i] == format_value(value, w.unit)
            for raw in column.raws:
                raw_value = report.value(report.raws[column.family][raw], w.name)
                if raw_value is None:
                    continue  # no idiom for this workload: no bar, rather than an empty one
                j = len(expected_ticks)
                expected_ticks.append(RAW[raw].label)  # the raw library, named right under its kind
                ratio = report.ratio(kind, raw, w.name)
                assert ratio is not None
                assert bars[j].get_width() == pytest.approx(raw_value)
                assert texts[j] == f"{format_value(raw_value, w.unit)}   {kind} {TIMES}{format_ratio(ratio)}"
        assert ticks == expected_ticks, w.name
    large = panels[[w.name for w in report.workloads].index("large")]
    assert "joblib" in [t.get_text() for t in large.get_yticklabels()]
    assert f"process {TIMES}{format_ratio(RATIOS['joblib'])}" in " ".join(t.get_text() for t in large.texts)

    path = tmp_path / "bench.png"
    plot(report, str(path))
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _words(text: str) -> list[str]:
    return text.replace("[dim]", " ").replace("[/dim]", " ").split()


@pytest.mark.parametrize("width", [100, 220])
def test_table_cuts_no_label(report: Report, width: int) -> None:
    console = Console(width=width, record=True, color_system=None)
    tables = render_tables(report, width)
    for table in tables:
        console.print(table)
    text = console.export_text()
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= width
    # every word of every label and cell is there whole
    first = next(iter(report.params.values()))
    wanted = [*KINDS, *(RAW[r].label for r in RATIOS)]
    for w in report.workloads:
        wanted += _words(w.describe(first)) + _words(f"{w.unit}, {'higher' if w.higher_is_better else 'lower'} is better")
        for kind in KINDS:
            wanted += _words(cell_text(report, kind, w.name, sep="\n"))
    printed = set(text.replace("│", " ").replace("┃", " ").split())
    assert [word for word in wanted if word not in printed] == []
    # a kind's lines stay whole: a value with its unit, a ratio with its library
    lines = {line.strip() for row in text.splitlines() for line in row.replace("┃", "│").split("│")}
    for w in report.workloads:
        for kind in KINDS:
            for line in cell_text(report, kind, w.name, sep="\n").splitlines():
                assert line in lines, (kind, w.name, line)
    # every kind has a column in exactly one of the tables
    assert sorted(c.header.split("\n")[0] for t in tables for c in t.columns[1:]) == sorted(KINDS)
    if width >= 220:
        assert len(tables) == 1
