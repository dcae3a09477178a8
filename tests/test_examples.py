"""Every example program, run under every usable kind, prints what its docstring
promises: an example can never rot.

Each (example, kind) is one test. The programs are separate interpreters, so
running them one after another would spend most of the time waiting on
interpreter and worker start-up (dask starts a local cluster per program);
the module fixture runs all the selected ones first, a few at a time, and each
test then checks its own result. Narrow the kinds with ``--unifex-kinds`` (or
``UNIFEX_TEST_KINDS``) and the examples with ``-k``, as for any test here.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from types import ModuleType
from typing import Any

import pytest

import unifex
from unifex.testing import configurations

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES_DIR = os.path.join(ROOT, "examples")


def _load_run_all() -> ModuleType:
    spec = importlib.util.spec_from_file_location("unifex_examples_run_all", os.path.join(EXAMPLES_DIR, "run_all.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


run_all = _load_run_all()
EXAMPLES: list[str] = run_all.discover()
# one pytest-xdist worker runs them all (the module fixture runs every selected pair)
pytestmark = pytest.mark.xdist_group("examples")

#: programs run at once by the fixture: enough to overlap start-up waits, few
#: enough not to starve a 2-core machine (each dask program starts processes)
JOBS = max(2, min(3, os.cpu_count() or 1))
#: seconds one program may take, a hang guard: the slowest (dask) take about
#: 10 s on a quiet 2-core machine and 25 s on a loaded one, but one passed 90 s
#: with two CPU burners, the other xdist worker and two more examples beside it
#: (session 4); a program that hangs is stopped and its stack printed
PROGRAM_TIMEOUT = 240.0
#: what the tutorial covers; each needs its example (issue 6)
TOPICS = {
    "lock_counter",
    "rlock_reentry",
    "event_gate",
    "bounded_semaphore",
    "condition_notify",
    "producer_consumer",
    "shared_dict",
    "apply_async_callbacks",
    "custom_pool",
    "close_vs_terminate",
    "ping_pong",
    "crawler",
}


def _kinds(config: pytest.Config) -> list[str]:
    """The usable kinds, narrowed like the conformance suite (one run per kind:
    the examples use each kind's default options)."""
    seen: list[str] = []
    for c in configurations(config.getoption("--unifex-kinds")):
        if c.kind not in seen:
            seen.append(c.kind)
    return seen


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "kind" in metafunc.fixturenames and "example" in metafunc.fixturenames:
        pairs = [(e, k) for e in EXAMPLES for k in _kinds(metafunc.config)]
        metafunc.parametrize(("example", "kind"), pairs, ids=[f"{e}-{k}" for e, k in pairs])


@pytest.fixture(scope="module")
def outcomes(request: pytest.FixtureRequest) -> dict[tuple[str, str], Any]:
    """Run every (example, kind) selected in this session, JOBS at a time.

    Each program has its own timeout (PROGRAM_TIMEOUT), so this ends.
    """
    wanted: list[tuple[str, str]] = []
    for item in request.session.items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if item.module is request.module and "example" in params and "kind" in params:  # type: ignore[attr-defined]
            wanted.append((params["example"], params["kind"]))
    return run_all.run_many(wanted, jobs=JOBS, timeout=PROGRAM_TIMEOUT)  # type: ignore[no-any-return]


# the first test pays for the whole batch in its fixture: each program is bounded
# by its own timeout, so this is generous rather than a hang guard
@pytest.mark.timeout(900)
def test_example_runs_and_prints_its_documented_output(example: str, kind: str, outcomes: dict[tuple[str, str], Any]) -> None:
    outcome = outcomes[example, kind]
    assert outcome.ok, f"{example} under {kind}: {outcome.status}\n{outcome.detail}"


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_declares_output_and_not_applicable(example: str) -> None:
    """The docstring shows the output, the table names only real kinds with a reason."""
    assert run_all.expected_output(example).strip()
    table = run_all.not_applicable(example)
    known = set(unifex.backends())
    for kind, reason in table.items():
        assert kind in known, f"{example}: NOT_APPLICABLE names {kind!r}, which is not a kind"
        assert len(reason) > 30, f"{example}: say why {kind!r} cannot run it, in a sentence"
    # few and honest: only serial, which cannot run tasks that wait for each other
    assert set(table) <= {"serial"}, f"{example}: not applicable under {sorted(table)}"


def test_every_tutorial_topic_has_an_example() -> None:
    assert set(EXAMPLES) >= TOPICS, f"missing: {sorted(TOPICS - set(EXAMPLES))}"


@pytest.mark.timeout(60)
def test_examples_take_backend_and_size() -> None:
    out = subprocess.run(
        [sys.executable, os.path.join(EXAMPLES_DIR, "lock_counter.py"), "--help"], capture_output=True, text=True, timeout=50, check=True
    ).stdout
    assert "--backend KIND" in out and "--size N" in out
    bad = subprocess.run([sys.executable, os.path.join(EXAMPLES_DIR, "ping_pong.py"), "--size", "1"], check=False, capture_output=True, text=True, timeout=50)
    assert bad.returncode == 2 and "--size must be at least 2" in bad.stderr


def test_table_shows_every_example_and_kind(outcomes: dict[tuple[str, str], Any]) -> None:
    examples = sorted({e for e, _ in outcomes})
    kinds = list(dict.fromkeys(k for _, k in outcomes))
    if not examples:
        pytest.skip("no (example, kind) selected in this session: the table has nothing to show")
    text = run_all.table(examples, kinds, outcomes)
    rows = text.splitlines()
    assert all(k in rows[0] for k in kinds)
    assert [r.split()[0] for r in rows[2:]] == examples
