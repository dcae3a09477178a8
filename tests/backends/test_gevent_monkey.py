"""The ``gevent`` kind with and without ``gevent.monkey.patch_all()``.

Patching changes the whole interpreter (``threading``, ``socket``, ``time``), so
every patched program runs in a subprocess; the pytest process stays unpatched.
The HTTP server is a real ``ThreadingHTTPServer`` on 127.0.0.1 started by the
test; it counts how many requests it serves at once.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import textwrap
import threading
import time
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

import unifex

#: how long the server takes to answer each request
DELAY = 0.2


class CountingServer(ThreadingHTTPServer):
    """Answers ``GET /page/N`` with ``page N`` after ``DELAY`` seconds and records
    the most requests it held at once."""

    request_queue_size = 256  # many clients connect at once
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.active = 0
        self.most = 0
        self.served = 0


class _Handler(BaseHTTPRequestHandler):
    server: CountingServer

    def do_GET(self) -> None:
        server = self.server
        with server.lock:
            server.active += 1
            server.most = max(server.most, server.active)
        try:
            time.sleep(DELAY)
            body = b"page " + self.path.rsplit("/", 1)[-1].encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        finally:
            with server.lock:
                server.active -= 1
                server.served += 1

    def log_message(self, format: str, *args: Any) -> None:  # keep the test output clean
        pass


@pytest.fixture
def http_server() -> Iterator[CountingServer]:
    server = CountingServer()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="test-http-server")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(10)


def run_patched(script: str, *args: object, timeout: float = 90) -> Any:
    """Run ``script`` in a fresh interpreter; it prints one JSON line last."""
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script), *map(str, args)],
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )
    assert proc.returncode == 0, f"the patched program failed:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout.strip().splitlines()[-1])


CRAWLER = """
    from gevent import monkey
    monkey.patch_all()  # first, before anything imports socket or threading

    import json, sys, time, urllib.request
    import unifex

    port, n = int(sys.argv[1]), int(sys.argv[2])

    def fetch(url):
        with urllib.request.urlopen(url, timeout=30) as response:
            return response.read().decode()

    urls = [f"http://127.0.0.1:{port}/page/{i}" for i in range(n)]
    t0 = time.monotonic()
    with unifex.executor("gevent", size=n) as ex:
        pages = list(ex.map(fetch, urls))
    print(json.dumps({"pages": pages, "elapsed": time.monotonic() - t0}))
"""


@pytest.mark.timeout(120)
def test_crawler_under_monkey_patching_fetches_concurrently(http_server: CountingServer) -> None:
    n = 40
    result = run_patched(CRAWLER, http_server.server_address[1], n)
    assert result["pages"] == [f"page {i}" for i in range(n)]
    assert http_server.served == n
    # patched sockets yield to the hub: the requests overlap
    assert http_server.most >= n // 2, f"at most {http_server.most} requests at once"


@pytest.mark.timeout(60)
def test_crawler_without_monkey_patching_fetches_one_at_a_time(http_server: CountingServer) -> None:
    """The documented limit: unpatched socket I/O blocks the hub, so the tasks
    of a gevent executor fetch one after another (the program stays correct)."""
    port = http_server.server_address[1]

    spans: list[tuple[float, float]] = []

    def fetch(url: str) -> str:
        start = time.monotonic()
        with urllib.request.urlopen(url, timeout=30) as response:
            page = str(response.read().decode())
        spans.append((start, time.monotonic()))
        return page

    urls = [f"http://127.0.0.1:{port}/page/{i}" for i in range(4)]
    with unifex.executor("gevent", size=4) as ex:
        pages = list(ex.map(fetch, urls))
    assert pages == [f"page {i}" for i in range(4)]
    # each fetch began after the one before had its page (the server's own count
    # can see two at once: it counts a request done only after the client has it)
    spans.sort()
    assert all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(spans))


WAITS = """
    import json, sys
    from gevent import monkey
    if sys.argv[1] == "after":  # the usual order: patch, then import everything
        monkey.patch_all()
        import unifex
    else:
        import unifex
        monkey.patch_all()
    import time
    from unifex import _wait
    from unifex.testing import tasks

    out = {}
    real_start = monkey.get_original("_thread", "start_new_thread")
    real_lock = monkey.get_original("_thread", "allocate_lock")
    with unifex.executor("gevent", size=4) as ex:
        def timed_sleep(seconds):
            start = time.monotonic()
            time.sleep(seconds)  # patched: yields to the hub
            return start, time.monotonic()

        spans = list(ex.map(timed_sleep, [0.2] * 4))
        # every sleep began before any ended: they overlapped
        out["sleeps_overlap"] = max(s for s, _ in spans) < min(e for _, e in spans)

        event = ex.Event()
        inner = ex.submit(tasks.wait_event_then, event, "inner", 10)
        outer = ex.submit(lambda f: f.result(timeout=10), inner)  # a task waits on a task
        unifex.sleep(0.05)
        out["outer_waits"] = not outer.done()
        event.set()
        out["outer"] = outer.result(timeout=10)

        q = ex.Queue()
        ex.submit(tasks.queue_put_range, q, 3)
        out["queue"] = [q.get(timeout=10) for _ in range(3)]

        try:
            ex.apply_async(tasks.sleep_return, (30,), timeout=0.1).result(timeout=10)
        except unifex.TaskTimeoutError:
            out["timeout"] = "TaskTimeoutError"

        # a real OS thread (not a patched one) waits on a gevent future
        fut = ex.submit(tasks.sleep_return, 0.1, "x")
        got, done = [], real_lock()
        done.acquire()
        def other():
            try:
                got.append(fut.result(timeout=10))
            finally:
                done.release()
        real_start(other, ())
        unifex.sleep(0.3)  # runs the hub past the task's 0.1 s sleep: the future settles
        out["other_thread_done"] = done.acquire(True, 30)
        out["other_thread"] = got
    out["context_after_close"] = repr(_wait.current())
    print(json.dumps(out))
"""


@pytest.mark.timeout(120)
@pytest.mark.parametrize("order", ["after", "before"], ids=["import-after-patch", "import-before-patch"])
def test_waits_and_helpers_under_monkey_patching(order: str) -> None:
    """Imported after patching, thread-locals are greenlet-locals: each worker
    pushes the wait context for itself. Imported before, they stay per thread."""
    out = run_patched(WAITS, order)
    assert out["sleeps_overlap"] is True
    assert out["outer_waits"] is True
    assert out["outer"] == "inner"
    assert out["queue"] == [0, 1, 2]
    assert out["timeout"] == "TaskTimeoutError"
    assert out["other_thread_done"] is True
    assert out["other_thread"] == ["x"]
    assert out["context_after_close"] == "<unifex thread wait context>"
