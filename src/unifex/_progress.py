"""Progress reporting, written once for every kind: ``map(..., progress=...)``
and :func:`unifex.progress` over any set of futures.

``progress=True`` draws a rich progress bar (count, rate, ETA) on stderr when
it is a terminal, else writes a plain line at most once a second and one at
the end; ``progress=callable`` is called with ``(done, total)`` after each
result (``total`` is None when the input has no length). Updates happen in the
thread that consumes the results, so a callable needs no lock. With progress
off nothing is imported or printed.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from ._base import BaseExecutor

__all__ = ["Reporter", "map_progress", "progress"]

T = TypeVar("T")

#: seconds between two plain-text lines (and between two redraws of the bar)
PLAIN_EVERY = 1.0
BAR_EVERY = 0.1


def _duration(secs: float) -> str:
    seconds = round(secs)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class Reporter:
    """Counts finished items and shows them the way ``show`` asks: ``True``
    (a rich bar on a terminal, plain lines otherwise), a callable
    ``(done, total)``, or ``False`` (nothing)."""

    def __init__(self, show: Any, total: int | None, description: str = "unifex") -> None:
        if not (show is True or show is False or show is None or callable(show)):
            raise TypeError(f"progress must be True, False or a callable(done, total), not {show!r}")
        self.total = total
        self.description = description
        self.done = 0
        self.started = time.monotonic()
        self._callback: Callable[[int, int | None], object] | None = show if callable(show) and show is not True else None
        self._enabled = bool(show)
        self._plain = False
        self._bar: Any = None
        self._task: Any = None
        self._last = self.started
        self._closed = False
        if self._enabled and self._callback is None:
            stream = sys.stderr
            if stream is not None and getattr(stream, "isatty", lambda: False)():
                self._start_bar()
            else:
                self._plain = True

    def _start_bar(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self._bar = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            auto_refresh=False,  # no refresh thread: redrawn from advance()
            transient=False,
        )
        self._bar.start()
        self._task = self._bar.add_task(self.description, total=self.total, rate="")

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        """The plain-text status: count, percentage, rate, ETA."""
        rate = self.rate()
        total = self.total
        elapsed = time.monotonic() - self.started
        if total is None:
            count = f"{self.done} done"
        else:
            pct = 100.0 * self.done / total if total else 100.0
            count = f"{self.done}/{total} ({pct:.0f}%)"
        text = f"{self.description}: {count}, {rate:.1f}/s"
        if total is not None and self.done < total and rate > 0:
            text += f", ETA {_duration((total - self.done) / rate)}"
        else:
            text += f", {_duration(elapsed)} elapsed"
        return text

    def advance(self, n: int = 1) -> None:
        if not self._enabled:
            return
        self.done += n
        if self._callback is not None:
            self._callback(self.done, self.total)
            return
        now = time.monotonic()
        if self._plain:
            if now - self._last >= PLAIN_EVERY:
                self._last = now
                self._write(self.line())
        elif now - self._last >= BAR_EVERY:
            self._last = now
            self._redraw()

    def _redraw(self) -> None:
        self._bar.update(self._task, completed=self.done, rate=f"{self.rate():.1f}/s")
        self._bar.refresh()

    def _write(self, text: str) -> None:
        stream = sys.stderr
        if stream is not None:
            stream.write(text + "\n")
            stream.flush()

    def close(self) -> None:
        """The last update: a final line, or the bar drawn complete and stopped."""
        if self._closed or not self._enabled:
            return
        self._closed = True
        if self._plain:
            self._write(self.line())
        elif self._bar is not None:
            self._redraw()
            self._bar.stop()


def _length(iterables: tuple[Iterable[Any], ...]) -> int | None:
    if all(hasattr(it, "__len__") for it in iterables):
        return min(len(it) for it in iterables)  # type: ignore[arg-type]
    return None


def map_progress(ex: BaseExecutor, fn: Callable[..., Any], iterables: tuple[Iterable[Any], ...], show: Any, make: Callable[[], Iterator[T]]) -> Iterator[T]:
    """``map`` with a progress report over its results."""
    name = getattr(fn, "__name__", None) or "map"
    reporter = Reporter(show, _length(iterables), f"{ex.kind} map {name}")
    try:
        results = make()
    except BaseException:
        reporter.close()
        raise
    return _counted(results, reporter)


def _counted(results: Iterator[T], reporter: Reporter) -> Iterator[T]:
    advance = reporter.advance
    try:
        for value in results:
            advance()
            yield value
    finally:
        close = getattr(results, "close", None)
        if close is not None:
            close()
        reporter.close()


def progress(futures: Iterable[Any], show: Any = True, *, total: int | None = None, timeout: float | None = None, description: str = "unifex") -> Iterator[Any]:
    """Yield ``futures`` (of any kind) as they finish, like
    :func:`unifex.as_completed`, showing progress as ``map(progress=...)``
    does: ``show=True`` a bar (plain lines when stderr is not a terminal),
    a callable ``(done, total)``, or ``False``."""
    from ._future import as_completed

    futures = list(futures)
    reporter = Reporter(show, total if total is not None else len(futures), description)
    return _counted(as_completed(futures, timeout), reporter)
