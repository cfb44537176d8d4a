"""A real HTTP receiver of notifications on loopback, for tests and the benchmark: it
records each request (headers and raw body) and answers with the statuses it is given."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Recorder:
    url: str
    requests: list[Received] = field(default_factory=list)
    #: Statuses to answer, in turn (the last one for ever after); 200 when empty.
    statuses: list[int] = field(default_factory=list)
    #: Sent as ``Location`` with a 3xx status.
    location: str = ""
    arrived: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, count: int, seconds: float = 30) -> list[Received]:
        """The requests once there are ``count`` (waits for the sender's thread, not for time)."""
        with self.arrived:
            if not self.arrived.wait_for(lambda: len(self.requests) >= count, seconds):
                raise AssertionError(f"{len(self.requests)} requests arrived, not {count}")
            return list(self.requests)


@contextmanager
def receiving(tls: ssl.SSLContext | None = None) -> Iterator[Recorder]:
    """A receiver on a free loopback port until the block ends (https with ``tls``)."""
    recorder: Recorder

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with recorder.arrived:
                recorder.requests.append(Received(self.path, dict(self.headers.items()), body))
                n = len(recorder.requests)
                recorder.arrived.notify_all()
            statuses = recorder.statuses or [200]
            status = statuses[min(n, len(statuses)) - 1]
            self.send_response(status)
            if 300 <= status < 400:
                self.send_header("Location", recorder.location)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    scheme = "http" if tls is None else "https"
    recorder = Recorder(f"{scheme}://127.0.0.1:{server.server_address[1]}/hook")
    thread = threading.Thread(target=server.serve_forever, name="receiver", daemon=True)
    thread.start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()
