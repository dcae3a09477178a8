#!/usr/bin/env python3
"""The test command: install unifex with every extra and the test tools into the
running interpreter, then run ruff, mypy and the whole test suite.

    python3 scripts/check.py            # everything
    python3 scripts/check.py -k lock    # extra arguments go to pytest
"""

from __future__ import annotations

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*cmd: str) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def main() -> int:
    py = sys.executable
    if os.environ.get("UNIFEX_SKIP_INSTALL") != "1":
        run(py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", ".[all,test]")
    try:
        run(py, "-m", "ruff", "check", "src", "tests", "benchmarks", "examples", "scripts")
        run(py, "-m", "mypy")
        run(py, "-m", "pytest", *sys.argv[1:])
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
