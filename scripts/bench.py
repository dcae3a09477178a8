#!/usr/bin/env python3
"""The main job: install unifex with every kind's dependencies (numpy and joblib
too, for the large-argument row), then run ``unifex bench`` (every usable kind
beside the raw libraries it wraps).

    python3 scripts/bench.py                       # the full run, a minute or two
    python3 scripts/bench.py --quick --json b.json  # extra arguments go to unifex bench
"""

from __future__ import annotations

import subprocess
import sys

from _env import install, interpreter, run


def main() -> int:
    py = interpreter()
    try:
        install(py, "all,bench")  # bench: numpy for the large-argument row, joblib beside process
        run(py, "-m", "unifex", "bench", *sys.argv[1:])
    except subprocess.CalledProcessError as exc:
        return exc.returncode or 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
