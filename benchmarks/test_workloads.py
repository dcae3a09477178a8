"""The workloads of ``unifex bench`` as pytest-benchmark cases: every usable kind
on every workload, each in one group with the raw library it wraps (the
``threads`` family with ThreadPoolExecutor, ``process`` with
ProcessPoolExecutor and multiprocessing.Pool, ``gevent`` and ``greenlet`` with
gevent.pool.Pool, ``dask`` with client.submit/client.map on the same cluster).

    python3 -m pytest benchmarks/test_workloads.py --benchmark-only
    UNIFEX_BENCH_QUICK=1 python3 -m pytest benchmarks/test_workloads.py --benchmark-only   # small counts

A case times one whole round from the caller (for the lock, queue and dict
workloads that includes handing the task to a worker; ``unifex bench`` times
those operations inside the task instead).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import unifex
from unifex import bench as _bench

KINDS = [kind for kind, ok in unifex.backends().items() if ok]
PLAN = _bench.plan(KINDS, _bench.env_quick())


@dataclass(frozen=True)
class Case:
    family: str
    workload: str
    subject: str

    @property
    def id(self) -> str:
        return f"{self.workload}-{self.subject}"


# family-major order: one family's executors and clusters are alive at a time
CASES = [
    Case(fam.name, w.name, name)
    for fam, fam_kinds, _ in PLAN
    for w in _bench.available_workloads()[0]  # the large arrays need numpy
    for name in [*fam_kinds, *fam.raws]
    if name in fam_kinds or _bench.raw_supports(name, w.name)
]


class Families:
    """Opens a family's subjects on first use and closes the previous family's."""

    def __init__(self) -> None:
        self._stack = contextlib.ExitStack()
        self._name: str | None = None
        self._session: _bench.FamilySession | None = None

    def get(self, family: str) -> _bench.FamilySession:
        if self._name != family:
            self.close()
            fam, kinds, p = next(entry for entry in PLAN if entry[0].name == family)
            self._session = self._stack.enter_context(_bench.open_family(fam, kinds, p))
            self._name = family
        assert self._session is not None
        return self._session

    def close(self) -> None:
        self._stack.close()
        self._stack = contextlib.ExitStack()
        self._name = self._session = None


@pytest.fixture(scope="module")
def families() -> Iterator[Families]:
    opened = Families()
    yield opened
    opened.close()


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_workload(benchmark: Any, families: Families, case: Case) -> None:
    session = families.get(case.family)
    subject = next((s for s in session.subjects if s.name == case.subject), None)
    if subject is None:
        pytest.fail(f"{case.subject} could not start: {session.errors.get(case.subject, 'unknown error')}", pytrace=False)
    if case.subject in session.broken:
        pytest.fail(f"{case.subject}: an earlier round hung, so it was stopped", pytrace=False)
    p = session_params(case.family)
    w = next(w for w in _bench.WORKLOADS if w.name == case.workload)
    benchmark.group = f"{w.name}: {w.describe(p)} ({case.family})"
    benchmark.extra_info.update(unit=w.unit, count_per_round=w.count(p), size=subject.size)
    try:
        benchmark.pedantic(subject.measure, args=(w.name, p), rounds=w.rounds(p), iterations=1)
    except TimeoutError:
        session.broken.add(case.subject)
        raise
    benchmark.extra_info["median"] = w.value(benchmark.stats.stats.median, p)


def session_params(family: str) -> _bench.Params:
    return next(p for fam, _, p in PLAN if fam.name == family)
