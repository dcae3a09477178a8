"""Lifecycle 4: ``map(..., progress=True)`` shows progress (a rich bar on a
terminal, plain lines otherwise) with count, rate and ETA on every kind;
``progress=callable`` receives ``(done, total)``; ``unifex.progress(futures)``
wraps any set of futures; nothing at all is printed when progress is off."""

from __future__ import annotations

from typing import Any

import pytest

import unifex
from unifex.testing import tasks


@pytest.mark.timeout(60)
def test_map_progress_callable_gets_every_count(ex: Any) -> None:
    updates: list[tuple[int, int | None]] = []
    assert list(ex.map(tasks.square, range(20), progress=lambda done, total: updates.append((done, total)))) == [i * i for i in range(20)]
    assert updates == [(i, 20) for i in range(1, 21)]


@pytest.mark.timeout(60)
def test_map_progress_over_an_iterator_has_no_total(ex: Any) -> None:
    updates: list[tuple[int, int | None]] = []
    assert list(ex.map(tasks.square, iter(range(5)), chunksize=2, progress=lambda d, t: updates.append((d, t)))) == [0, 1, 4, 9, 16]
    assert updates[-1] == (5, None)


@pytest.mark.timeout(60)
def test_map_progress_true_writes_plain_lines_when_not_a_terminal(ex: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert sum(ex.map(tasks.square, range(30), progress=True)) == sum(i * i for i in range(30))
    err = capsys.readouterr().err
    last = err.strip().splitlines()[-1]
    assert "30/30 (100%)" in last
    assert "/s" in last  # the rate


@pytest.mark.timeout(60)
def test_no_output_when_progress_is_off(ex: Any, capsys: pytest.CaptureFixture[str]) -> None:
    list(ex.map(tasks.square, range(30)))
    list(ex.map(tasks.square, range(30), progress=False))
    out, err = capsys.readouterr()
    assert out == "" and err == ""


@pytest.mark.timeout(60)
def test_progress_wraps_any_futures(ex: Any) -> None:
    futures = [ex.submit(tasks.square, i) for i in range(10)]
    updates: list[tuple[int, int | None]] = []
    seen = list(unifex.progress(futures, lambda d, t: updates.append((d, t))))
    assert sorted(f.result() for f in seen) == [i * i for i in range(10)]
    assert updates[-1] == (10, 10)


@pytest.mark.timeout(60)
def test_progress_stops_with_the_map_at_its_error(ex: Any, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(tasks.TaskError):
        list(ex.map(tasks.raise_at, range(10), [4] * 10, progress=True))
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert "4/10" in last


def test_bad_progress_raises_type_error(ex: Any) -> None:
    with pytest.raises(TypeError, match="progress"):
        ex.map(tasks.square, range(3), progress="yes")
