"""The ``gevent`` kind at scale: 10,000 sleeping tasks at once, in memory close
to gevent's own ``Pool.spawn``.

Memory is measured in fresh interpreters (one for raw gevent, one for unifex,
run one after the other) so neither inherits the other's freed heap. Nothing
here reads the clock: overlap and "every task is parked" are observed directly,
so the tests hold on a busy machine.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

import unifex

N = 10_000


def sleep_when_all_started(started: dict[str, int], n: int) -> int:
    """Count in, wait (at most about a minute) until all ``n`` tasks have, then
    sleep 1 s: with fewer than ``n`` tasks alive at once this returns < n."""
    started["n"] += 1
    for _ in range(600):
        if started["n"] >= n:
            break
        unifex.sleep(0.1)
    unifex.sleep(1)
    return started["n"]


@pytest.mark.timeout(180)
def test_ten_thousand_sleeping_tasks_sleep_at_the_same_time() -> None:
    started = {"n": 0}
    with unifex.executor("gevent", size=N) as ex:
        futures = [ex.submit(sleep_when_all_started, started, N) for _ in range(N)]
        done, not_done = unifex.wait(futures, timeout=150)
    assert len(done) == N and not not_done
    assert all(f.result() == N for f in futures)


MEMORY = """
    import gc, json, os, sys, time
    import gevent, gevent.pool
    import unifex

    which, n = sys.argv[1], int(sys.argv[2])
    page = os.sysconf("SC_PAGE_SIZE")

    def rss():
        gc.collect()
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * page

    parked = [0]

    def nap():
        parked[0] += 1
        gevent.sleep(60)  # parked until killed

    # warm up both paths so one-time allocations are not counted per task
    gevent.pool.Pool(4).spawn(nap).kill()
    with unifex.executor("gevent", size=4) as ex:
        ex.submit(unifex.sleep, 0).result()
    before = rss()
    if which == "gevent":
        pool = gevent.pool.Pool(n)
        glets = [pool.spawn(nap) for _ in range(n)]
        while parked[0] < n:  # until every greenlet is parked in its sleep
            gevent.sleep(0.05)
        during = rss()
        pool.kill()
    else:
        ex = unifex.executor("gevent", size=n)
        futures = [ex.submit(nap) for _ in range(n)]
        while parked[0] < n:  # until every task is parked in its sleep
            unifex.sleep(0.05)
        assert all(f.running() for f in futures)
        during = rss()
        ex.terminate()
    print(json.dumps({"per_task": (during - before) / n}))
"""


def per_task_bytes(which: str) -> float:
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(MEMORY), which, str(N)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["per_task"])


@pytest.mark.timeout(240)
def test_memory_per_idle_task_stays_near_gevents_own() -> None:
    raw = per_task_bytes("gevent")
    ours = per_task_bytes("unifex")
    print(f"\nRSS per idle task: gevent Pool.spawn {raw:.0f} B, unifex gevent {ours:.0f} B ({ours / raw:.2f}x)")
    assert raw > 0
    # A future, the queued tuple and a worker greenlet per task: generous bound.
    assert ours < 2.0 * raw + 1024, f"unifex {ours:.0f} B per idle task vs gevent {raw:.0f} B"
