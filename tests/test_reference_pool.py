"""The reference tutorial's ``multiprocessing.Pool`` programs run with only the
constructor line changed (issue 10 point 5).

The programs are copied unchanged from ``/work/shared/reference/`` into
``tests/peer/reference_pool/`` as ``.py.txt`` (provenance in its ``README.md``). Each runs as
it is, under ``multiprocessing.Pool``, and with its ``pool = multiprocessing.Pool(5)``
line replaced by ``import unifex; pool = unifex.executor(KIND, 5)``, side by
side; the outputs must match. ``apply`` runs one task at a time, so its output
is compared line for line; ``apply_async`` runs five at once and their prints
interleave in any order (under ``multiprocessing.Pool`` too, and under threads a
``print`` may even land between another's text and its newline), so what each
``print`` wrote is compared as a multiset.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

HERE = Path(__file__).parent / "peer" / "reference_pool"
SRC = Path(__file__).parent.parent / "src"
CONSTRUCTOR = re.compile(r"^(\s*)pool = multiprocessing\.Pool\((\d+)\)", re.MULTILINE)
#: program -> the pattern of one print's text, or None to compare line for line
PROGRAMS: dict[str, str | None] = {
    "tutorial_pool_apply": None,
    "tutorial_pool_apply_async": r"\d{3}|返回值\uff0c返回给回调函数的\uff0c形式参数",  # \uff0c: the tutorial's full-width comma
}
TIMEOUT = 120.0


def _respelled(source: str, kind: str) -> str:
    lines = CONSTRUCTOR.findall(source)
    assert len(lines) == 1, "the program should make exactly one multiprocessing.Pool"
    return CONSTRUCTOR.sub(lambda m: f"{m.group(1)}import unifex; pool = unifex.executor({kind!r}, {m.group(2)})", source)


def _start(path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    return subprocess.Popen([sys.executable, str(path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env)


def _finish(proc: subprocess.Popen[str]) -> str:
    try:
        out, err = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise AssertionError(f"{proc.args!r} did not finish within {TIMEOUT:g} s") from None
    assert proc.returncode == 0, f"{proc.args!r} exited with {proc.returncode}; stderr:\n{err}"
    assert "Traceback" not in err, err
    return out


@pytest.mark.parametrize("kind", ["process", "thread"])
@pytest.mark.parametrize("program", sorted(PROGRAMS))
def test_reference_pool_program(program: str, kind: str, tmp_path: Path) -> None:
    source = (HERE / f"{program}.py.txt").read_text(encoding="utf-8")
    original = tmp_path / f"{program}.py"
    original.write_text(source, encoding="utf-8")
    variant = tmp_path / f"{program}_{kind}.py"
    variant.write_text(_respelled(source, kind), encoding="utf-8")
    changed = [(a, b) for a, b in zip(source.splitlines(), variant.read_text(encoding="utf-8").splitlines(), strict=True) if a != b]
    assert len(changed) == 1 and "multiprocessing.Pool(" in changed[0][0]

    procs = [_start(original), _start(variant)]  # side by side: both sleep-bound
    expected, got = (_finish(p) for p in procs)

    pattern = PROGRAMS[program]
    assert expected.strip(), "the original program printed nothing"
    if pattern is None:
        assert got.splitlines() == expected.splitlines()
    else:
        assert Counter(re.findall(pattern, got)) == Counter(re.findall(pattern, expected))
        assert re.sub(pattern, "", got).split() == re.sub(pattern, "", expected).split() == []
