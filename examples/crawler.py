"""A concurrent crawler: fetch pages from a local web server, several at a time.

The program starts its own HTTP server on 127.0.0.1 (a free port, in a
background thread; no internet needed). Each page takes the server a moment
to produce, like a real site. ``ex.map(fetch, urls)`` fetches them with
``--size`` requests in flight and yields the results in page order, however
they finish. The server is shut down at the end.

Which model suits it: fetching is waiting on sockets, so threads and gevent
overlap the waits cheaply; processes and dask work too but pay to start
workers. ``greenlet`` and ``serial`` fetch one page at a time: plain
greenlets switch only at unifex waits, and urllib's socket calls are not one.

gevent and blocking I/O: gevent switches greenlets when a socket would block
only if the socket module is gevent's. Without ``gevent.monkey.patch_all()``,
each urllib call blocks the whole hub and the pages come one at a time (the
output is the same, only slower). So with ``--backend gevent`` this program
patches, first thing, before anything imports ``socket`` or ``threading``;
the server's threads then become greenlets too. Other kinds are left
unpatched: patching changes the whole program, so do it only when you use
gevent.

Output, the same under every kind::

    page 0: 708 bytes, sha1 6d71957702
    page 1: 946 bytes, sha1 268516ad7d
    page 2: 1184 bytes, sha1 7c0df4428f
    page 3: 1422 bytes, sha1 be007a4ce1
    page 4: 1660 bytes, sha1 59c0ff5615
    page 5: 1898 bytes, sha1 1292d34611
    page 6: 2136 bytes, sha1 e4def86520
    page 7: 2374 bytes, sha1 dbf98714f3
    8 pages, 12328 bytes

Run: ``python examples/crawler.py --backend gevent --verbose``
"""

# gevent must patch before the imports below, hence imports after code:
# ruff: noqa: E402
from __future__ import annotations

import sys


def _gevent_requested(argv: list[str]) -> bool:
    """``--backend gevent`` or ``--backend=gevent`` on the command line."""
    pairs = zip(argv, [*argv[1:], ""], strict=True)
    return any(arg == "--backend=gevent" or (arg, value) == ("--backend", "gevent") for arg, value in pairs)


if __name__ == "__main__" and _gevent_requested(sys.argv[1:]):
    from gevent import monkey

    monkey.patch_all()

import hashlib
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import _common

import unifex

PAGES = 8
PAGE_DELAY = 0.1  # seconds the server takes per page

#: every kind can run this program
NOT_APPLICABLE: dict[str, str] = {}


def page_body(number: int) -> bytes:
    """The page the server sends for ``/page/<number>``: a different size each."""
    line = f"<p>page {number}: unifex crawls this</p>\n".encode()
    return b"<html><body>\n" + line * (20 + 7 * number) + b"</body></html>\n"


class PageHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        prefix = "/page/"
        if not self.path.startswith(prefix) or not self.path[len(prefix) :].isdigit():
            self.send_error(404, f"no such page: {self.path}; try /page/0")
            return
        body = page_body(int(self.path[len(prefix) :]))
        time.sleep(PAGE_DELAY)  # a slow site; under gevent (patched) this yields to the hub
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep the program's output to its results


def fetch(url: str) -> tuple[int, str]:
    """Download ``url``; return its size and the start of its SHA-1."""
    # no proxy: the server is on this machine, whatever http_proxy says
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as response:
        body = response.read()
    return len(body), hashlib.sha1(body).hexdigest()[:10]


def main() -> None:
    args = _common.parse_args(__doc__ or "", default_size=4, flags={"--verbose": "also print how long the crawl took"})
    _common.skip_if_not_applicable(args.backend, NOT_APPLICABLE)
    server = ThreadingHTTPServer(("127.0.0.1", 0), PageHandler)
    server.daemon_threads = True
    # a short poll interval: shutdown() waits up to one interval for the loop to notice
    serving = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, name="page-server", daemon=True)
    serving.start()
    try:
        host, port = server.server_address[:2]
        urls = [f"http://{host!s}:{port}/page/{n}" for n in range(PAGES)]
        started = time.perf_counter()
        with unifex.executor(args.backend, size=args.size) as ex:
            pages = list(ex.map(fetch, urls))
        took = time.perf_counter() - started
    finally:
        server.shutdown()
        server.server_close()
        serving.join(timeout=10)
    for n, (size, digest) in enumerate(pages):
        print(f"page {n}: {size} bytes, sha1 {digest}")
    print(f"{len(pages)} pages, {sum(size for size, _ in pages)} bytes")
    if args.verbose:
        print(f"took {took:.2f} s with {args.size} workers; one at a time would take at least {PAGES * PAGE_DELAY:.2f} s")


if __name__ == "__main__":
    main()
