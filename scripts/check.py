#!/usr/bin/env python3
"""The test command: install unifex with every extra and the test tools, then
run ruff, mypy and the whole test suite.

    python3 scripts/check.py            # everything
    python3 scripts/check.py -k lock    # extra arguments go to pytest

It installs into the running interpreter when that is a virtual environment or a
Python that allows it (pyenv, a container's python); where the system Python is
"externally managed" (PEP 668, e.g. Debian's), it makes ``.venv`` and uses that.
"""

from __future__ import annotations

import subprocess
import sys

from _env import install, interpreter, run


def main() -> int:
    py = interpreter()
    try:
        install(py, "all,test")
        run(py, "-m", "ruff", "check", "src", "tests", "benchmarks", "examples", "scripts")
        run(py, "-m", "mypy")
        run(py, "-m", "pytest", *sys.argv[1:])
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
