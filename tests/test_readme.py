"""The README's example runs, under three kinds, and prints what it promises."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def example_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    program = [b for b in blocks if "__main__" in b]
    assert program, "the README lost its runnable example"
    return str(program[0])


def test_readme_example_gives_the_same_result_under_three_kinds(tmp_path: Path) -> None:
    script = tmp_path / "readme_example.py"
    script.write_text(example_source())
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines] == ["thread", "process", "gevent"]
    assert all(line.split(" ", 1)[1] == "{'words': 820, 'texts': 40}" for line in lines)


@pytest.mark.parametrize("kind", ["pool", "serial", "greenlet"])
def test_readme_example_under_other_kinds(tmp_path: Path, kind: str) -> None:
    script = tmp_path / "readme_example.py"
    script.write_text(example_source())
    out = subprocess.run([sys.executable, str(script), kind], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == f"{kind} {{'words': 820, 'texts': 40}}"
