"""Run CPython's own ``multiprocessing.Pool`` tests (``test._test_multiprocessing._TestPool``)
against a unifex kind, as a yardstick for the Pool spelling (not a CI test):

    PYTHONPATH=src python3 scripts/pool_yardstick.py process
    PYTHONPATH=src python3 scripts/pool_yardstick.py thread

The differences, and why, are listed in docs/ecosystem.md.
"""

from __future__ import annotations

import sys
import unittest
from typing import Any

import test._test_multiprocessing as mp_tests

import unifex


def main(kind: str) -> int:
    class UnifexPoolTests(mp_tests._TestPool, unittest.TestCase):  # type: ignore[misc,name-defined]
        TYPE = "processes" if kind == "process" else "threads"
        manager = None

        @classmethod
        def Pool(cls, processes: int | None = None, *args: Any, **kwargs: Any) -> Any:
            return unifex.executor(kind, size=processes)

        @classmethod
        def tearDownClass(cls) -> None:
            cls.pool.terminate()
            cls.pool.join()
            cls.pool = None

    suite = unittest.defaultTestLoader.loadTestsFromTestCase(UnifexPoolTests)
    result = unittest.TextTestRunner(verbosity=2, stream=sys.stdout).run(suite)
    failed = len(result.failures) + len(result.errors)
    passed = result.testsRun - failed - len(result.skipped)
    print(f"{kind}: {passed} passed, {failed} differ, {len(result.skipped)} skipped of {result.testsRun}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "process"))
