"""Lifecycle 4, the terminal side: on a terminal ``progress=True`` draws a rich
bar (count, rate, ETA) on stderr and starts no refresh thread."""

from __future__ import annotations

import io
import sys
import threading

import pytest

import unifex


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_a_rich_bar_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    term = _Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    threads = threading.active_count()
    with unifex.executor("thread", size=2) as ex:
        results = iter(ex.map(abs, range(50), progress=True))
        next(results)
        assert threading.active_count() <= threads + 2  # the executor's workers, no refresh thread
        assert sum(results) == sum(range(1, 50))
    text = term.getvalue()
    assert "50/50" in text
    assert "/s" in text and "ETA" in text
