#!/usr/bin/env python3
"""The test command: install unifex with every extra and the test tools, then
run ruff, mypy and the whole test suite.

    python3 scripts/check.py            # everything
    python3 scripts/check.py -k lock    # extra arguments go to pytest
    UNIFEX_TEST_WORKERS=0 python3 scripts/check.py   # pytest in one process (default: 2 xdist workers)

It installs into the running interpreter when that is a virtual environment or a
Python that allows it (pyenv, a container's python); where the system Python is
"externally managed" (PEP 668, e.g. Debian's), it makes ``.venv`` and uses that.
"""

from __future__ import annotations

import os
import subprocess
import sys

from _env import ROOT, install, interpreter, run


def main() -> int:
    py = interpreter()
    try:
        install(py, "all,test")
        run(py, "-m", "ruff", "check", "src", "tests", "benchmarks", "examples", "scripts")
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    # mypy (a minute of one core) checks while the tests run; its report follows theirs
    print("+", py, "-m mypy (beside the tests)", flush=True)
    mypy = subprocess.Popen([py, "-m", "mypy"], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    # two pytest-xdist workers: the suite is mostly waiting (processes, clusters,
    # CPython's own sleeps); a third starts a third dask cluster and was slower
    workers = os.environ.get("UNIFEX_TEST_WORKERS", "2")
    tests = subprocess.run([py, "-m", "pytest", "-n", workers, "--dist", "loadgroup", *sys.argv[1:]], cwd=ROOT, check=False)
    typed, _ = mypy.communicate()
    print(typed, end="", flush=True)
    return tests.returncode or mypy.returncode


if __name__ == "__main__":
    sys.exit(main())
