"""The measurements behind ``unifex bench``: the workloads that decide which kind
to use, run for every usable kind beside the raw library that kind wraps.

Used by the ``unifex bench`` command (:mod:`unifex.__main__`) and by the
pytest-benchmark suite in ``benchmarks/``. The data flow of one run::

    kinds --group by raw library--> families (threads, process, gevent, dask, ...)
    family: start its executors and raw pools -> warm up -> for each workload,
            rounds interleaved across subjects -> close
    cells (seconds per round) -> medians, ratios -> table | JSON | bar chart

Every unifex kind runs the same code (that is the point of unifex); each raw
library runs its own idiom. A ratio is unifex time / raw library time for the
same work measured side by side in the same run: below 1.00 unifex is faster.
The optional libraries (gevent, distributed, matplotlib) are imported only when
the family or the chart that needs them is asked for.

The modules, in the order of a run: ``workloads`` (the task functions, the
sizes of a round, the rows), ``subjects`` (the executors and raw libraries
compared, grouped in families), ``runner`` (the rounds) and ``report`` (the
results as a table, JSON or a bar chart).
"""

from __future__ import annotations

from .report import (
    Cell,
    Column,
    PlotUnavailableError,
    Report,
    figure,
    markdown_table,
    plot,
    render_table,
    render_tables,
    require_matplotlib,
)
from .runner import ProgressFn, machine_info, plan, run, total_steps
from .subjects import (
    FAMILIES,
    RAW,
    RAW_CLASSES,
    Family,
    FamilySession,
    RawSubject,
    Subject,
    UnifexSubject,
    family_of,
    open_family,
    raw_supports,
)
from .workloads import WORKLOAD_NAMES, WORKLOADS, Params, Workload, available_workloads, env_quick, params_for

__all__ = (
    "FAMILIES",
    "RAW",
    "RAW_CLASSES",
    "WORKLOADS",
    "WORKLOAD_NAMES",
    "Cell",
    "Column",
    "Family",
    "FamilySession",
    "Params",
    "PlotUnavailableError",
    "ProgressFn",
    "RawSubject",
    "Report",
    "Subject",
    "UnifexSubject",
    "Workload",
    "available_workloads",
    "env_quick",
    "family_of",
    "figure",
    "machine_info",
    "markdown_table",
    "open_family",
    "params_for",
    "plan",
    "plot",
    "raw_supports",
    "render_table",
    "render_tables",
    "require_matplotlib",
    "run",
    "total_steps",
)
