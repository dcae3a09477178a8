"""Ecosystem clause 5: the ``multiprocessing.Pool`` spelling ports: ``apply``,
``apply_async`` (whose future answers ``get``/``ready``/``successful``/``wait``),
``map_async``, ``starmap``, ``starmap_async``, ``imap``, ``imap_unordered``,
``join`` after ``close``; the reference tutorial's Pool programs run with only
the constructor line changed."""

from __future__ import annotations

import multiprocessing
import os
import re
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from unifex.testing import tasks


def test_apply_and_apply_async_with_pool_keywords(ex: Any) -> None:
    assert ex.apply(tasks.add, (2, 3)) == 5
    got: list[Any] = []
    res = ex.apply_async(func=tasks.add, args=(1, 2), kwds={"c": 3}, callback=got.append)
    assert res.get(timeout=30) == 6
    res.wait(30)
    assert res.ready() and res.successful()
    ex.close()
    ex.join()
    assert got == [6]


def test_async_result_of_a_failure(ex: Any) -> None:
    res = ex.apply_async(tasks.fail, ("bad",))
    res.wait(30)
    assert res.ready() and not res.successful()
    with pytest.raises(tasks.TaskError, match="bad"):
        res.get(timeout=30)


@pytest.mark.requires("concurrent")
def test_get_timeout_is_a_multiprocessing_timeout_error(make_executor: Any) -> None:
    ex = make_executor(size=1)
    release = ex.Event()
    res = ex.apply_async(tasks.wait_event_then, (release, "late"))
    with pytest.raises(multiprocessing.TimeoutError):
        res.get(timeout=0.05)
    with pytest.raises(TimeoutError):
        res.get(timeout=0.01)
    with pytest.raises(ValueError, match="not ready"):
        res.successful()
    release.set()
    assert res.get(timeout=30) == "late"


def test_starmap_and_the_async_variants(ex: Any) -> None:
    assert ex.starmap(tasks.add, [(1, 2), (3, 4)]) == [3, 7]
    got: list[Any] = []
    assert ex.starmap_async(tasks.add, [(i, i) for i in range(5)], callback=got.append).get(timeout=30) == [0, 2, 4, 6, 8]
    assert ex.map_async(tasks.square, range(7), chunksize=3).get(timeout=30) == [i * i for i in range(7)]
    assert ex.map_async(tasks.square, []).get(timeout=30) == []
    ex.close(wait=True)
    assert got == [[0, 2, 4, 6, 8]]


def test_map_async_error_goes_to_error_callback(ex: Any) -> None:
    errors: list[BaseException] = []
    res = ex.starmap_async(tasks.raise_at, [(i, 2) for i in range(4)], error_callback=errors.append)
    with pytest.raises(tasks.TaskError):
        res.get(timeout=30)
    ex.close(wait=True)
    assert len(errors) == 1 and isinstance(errors[0], tasks.TaskError)


def test_imap_and_imap_unordered(ex: Any) -> None:
    assert list(ex.imap(tasks.square, range(6))) == [i * i for i in range(6)]
    assert list(ex.imap(tasks.square, range(6), chunksize=2)) == [i * i for i in range(6)]
    assert sorted(ex.imap_unordered(tasks.square, range(6))) == [i * i for i in range(6)]


def test_join_before_close_is_a_value_error(ex: Any) -> None:
    with pytest.raises(ValueError, match="close"):
        ex.join()


TUTORIAL_APPLY = """
import time
import unifex

def Foo(i):
    time.sleep(0.01)
    print(i + 100)

if __name__ == '__main__':
    pool = unifex.executor({kind!r}, 5{options})

    for i in range(10):
        pool.apply(func=Foo, args=(i,))
    pool.close()
"""

TUTORIAL_APPLY_ASYNC = """
import time
import unifex

def Foo(i):
    time.sleep(0.01)
    return i + 100

def f2(a):
    print(a)

if __name__ == '__main__':
    pool = unifex.executor({kind!r}, 5{options})

    for i in range(10):
        pool.apply_async(func=Foo, args=(i,), callback=f2)

    pool.close()
    pool.join()
"""


@pytest.mark.timeout(180)
@pytest.mark.parametrize("program", [TUTORIAL_APPLY, TUTORIAL_APPLY_ASYNC], ids=["apply", "apply_async"])
def test_the_tutorials_pool_programs_run_with_the_constructor_changed(kind_config: Any, program: str, tmp_path: Any) -> None:
    # a joined dask cluster belongs to this test session: the program starts its own
    options = "" if kind_config.kind == "dask" else "".join(f", {k}={v!r}" for k, v in kind_config.options.items())
    script = tmp_path / "tutorial.py"
    script.write_text(textwrap.dedent(program.format(kind=kind_config.kind, options=options)))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=170, env=env, check=False)
    assert out.returncode == 0, out.stderr
    printed = re.findall(r"1\d\d", out.stdout)  # callbacks print from several threads: lines may run together
    if program is TUTORIAL_APPLY:
        assert printed == [str(100 + i) for i in range(10)]
    else:
        assert sorted(printed) == [str(100 + i) for i in range(10)]
