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

import os
import subprocess
import sys
import sysconfig

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*cmd: str) -> None:
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, cwd=ROOT, check=True)


def interpreter() -> str:
    in_venv = sys.prefix != sys.base_prefix
    managed = os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED"))
    if in_venv or not managed:
        return sys.executable
    venv = os.path.join(ROOT, ".venv")
    python = os.path.join(venv, "bin", "python")
    if not os.path.exists(python):
        run(sys.executable, "-m", "venv", venv)
    return python


def main() -> int:
    py = interpreter()
    try:
        if os.environ.get("UNIFEX_SKIP_INSTALL") != "1":
            run(py, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "-e", ".[all,test]")
        run(py, "-m", "ruff", "check", "src", "tests", "benchmarks", "examples", "scripts")
        run(py, "-m", "mypy")
        run(py, "-m", "pytest", *sys.argv[1:])
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
