"""Connection hygiene below the ASGI app: slow, oversized and greedy clients are cut off.

uvicorn closes an idle keep-alive connection, but nothing bounds a request that
arrives slowly: a client trickling a byte every few seconds, or never finishing
its headers, holds a connection (and a file descriptor) for ever. Its protocol
(httptools) also answers malformed requests in ``text/plain``. The protocol made
by :func:`guarded_protocol` adds, per connection:

* a header deadline: the request line and headers must arrive within
  ``header_timeout_seconds`` of the connection opening (or of the request's
  first byte, for later requests on a keep-alive connection), and be at most
  ``max_header_bytes`` long;
* a body deadline: the body must arrive within ``body_timeout_seconds`` of the
  headers;
* a cap of ``max_connections_per_client`` open connections per client address;

and answers each breach, and any request that is not HTTP/1.1, with a problem
document (408, 400 or 429) before closing the connection. It runs on the event
loop, before any of the app's code, so a flood of such connections costs no
thread.

It also tells a request when the server begins to shut down (an ``asyncio.Event``
in the scope's extensions, under :data:`STOPPING`): uvicorn waits for every
response to finish before it stops, and an event stream would never finish.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from http import HTTPStatus
from typing import Any, ClassVar

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from banking_analytics.api._problems import PROBLEM_MEDIA_TYPE, problem_body
from banking_analytics.api._settings import ApiSettings

__all__ = ["STOPPING", "guarded_protocol", "uvicorn_options"]

#: The scope extension holding an ``asyncio.Event`` set when the server starts shutting
#: down: open event streams end then (api/routes/stream.py).
STOPPING = "banking_analytics.stopping"

#: How long a refused connection stays half-open, its input dropped, before it is closed.
_LINGER_SECONDS = 1.0
_BAD_REQUEST = (
    "the request is not valid HTTP/1.1: a raw space or control character in the path, "
    "or a malformed request line or header"
)


class _HeadTooLargeError(Exception):
    pass


def _raw_problem(status: int, detail: str, headers: dict[str, str] | None = None) -> bytes:
    """A whole HTTP/1.1 response carrying a problem document, closing the connection."""
    body = problem_body(None, status, detail)
    lines = [
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
        f"content-type: {PROBLEM_MEDIA_TYPE}",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in (headers or {}).items()),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii") + body


class GuardedProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with deadlines, a header size cap and a per-address
    connection cap (see the module). Subclassed per server by :func:`guarded_protocol`."""

    settings: ClassVar[ApiSettings]
    #: Open connections per client address, shared by the server's connections.
    open_by_address: ClassVar[Counter[str]]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._deadline: asyncio.TimerHandle | None = None
        self._address: str | None = None
        self._head_bytes = 0
        self._head_problem: str | None = None
        self._refused = False
        self._stopping = asyncio.Event()

    # -- the connection -----------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        address = self.client[0] if self.client else None
        if address is not None:
            cap = self.settings.max_connections_per_client
            if self.open_by_address[address] >= cap:
                self._refuse(
                    429,
                    f"this address already holds {cap} open connections, the most allowed; "
                    "close some or reuse them (keep-alive)",
                    {"retry-after": "1"},
                )
                return
            self.open_by_address[address] += 1
            self._address = address
        self._start_deadline(self.settings.header_timeout_seconds, "the request line and headers")

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_deadline()
        if self._address is not None:
            self.open_by_address[self._address] -= 1
            if self.open_by_address[self._address] <= 0:
                del self.open_by_address[self._address]
            self._address = None
        super().connection_lost(exc)

    def _refuse(self, status: int, detail: str, headers: dict[str, str] | None = None) -> None:
        self._stop_deadline()
        if self._refused or self.transport.is_closing():
            return
        self._refused = True
        self.transport.write(_raw_problem(status, detail, headers))
        # Half-close and linger: closed at once, the client's bytes still in flight
        # would be answered with a reset, which can discard this answer unread.
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.loop.call_later(_LINGER_SECONDS, self.transport.close)

    def data_received(self, data: bytes) -> None:
        if not self._refused:  # what a refused client still sends is dropped
            super().data_received(data)

    # -- deadlines ----------------------------------------------------------------------

    def _start_deadline(self, seconds: float, what: str) -> None:
        self._stop_deadline()
        self._deadline = self.loop.call_later(seconds, self._expired, seconds, what)

    def _stop_deadline(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self, seconds: float, what: str) -> None:
        self._deadline = None
        detail = f"{what} did not arrive within {seconds:g} s"
        if self.cycle is not None and self.cycle.response_started:
            # The app has answered (a 401 before the body, say): just hang up.
            self.transport.close()
        else:
            self._refuse(408, detail)

    # -- parser callbacks ---------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._head_bytes = 0
        if self._deadline is None:  # a later request on a keep-alive connection
            self._start_deadline(
                self.settings.header_timeout_seconds, "the request line and headers"
            )

    def on_url(self, url: bytes) -> None:
        self._count_head(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count_head(len(name) + len(value) + 4)
        super().on_header(name, value)

    def _count_head(self, size: int) -> None:
        self._head_bytes += size
        limit = self.settings.max_header_bytes
        if self._head_bytes > limit:
            self._head_problem = f"the request line and headers are longer than {limit} bytes"
            # Raised inside a parser callback: httptools stops and the protocol answers 400.
            raise _HeadTooLargeError

    def on_headers_complete(self) -> None:
        self._stop_deadline()
        extensions: dict[str, Any] = self.scope.setdefault("extensions", {})
        extensions[STOPPING] = self._stopping
        if any(
            (name == b"content-length" and value.strip() not in (b"", b"0"))
            or name == b"transfer-encoding"
            for name, value in self.headers
        ):
            self._start_deadline(self.settings.body_timeout_seconds, "the request body")
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._stop_deadline()
        super().on_message_complete()

    def shutdown(self) -> None:
        self._stopping.set()
        super().shutdown()

    def send_400_response(self, msg: str) -> None:
        detail, self._head_problem = self._head_problem or _BAD_REQUEST, None
        self._refuse(400, detail)


def guarded_protocol(settings: ApiSettings) -> type[GuardedProtocol]:
    """The protocol class for one server (its own connection counts), set by ``settings``."""
    return type(
        "GuardedProtocol",
        (GuardedProtocol,),
        {"settings": settings, "open_by_address": Counter()},
    )


def uvicorn_options(settings: ApiSettings) -> dict[str, Any]:
    """The uvicorn settings that go with the app: its protocol and keep-alive time."""
    return {
        "http": guarded_protocol(settings),
        "timeout_keep_alive": settings.keep_alive_seconds,
    }


@functools.cache
def _from_environment() -> type[GuardedProtocol]:
    return guarded_protocol(ApiSettings())


def __getattr__(name: str) -> Any:
    # Server processes started by ``serve --workers`` import the protocol by name
    # (uvicorn cannot hand them a class made at run time); it reads BA_* there.
    if name == "EnvironmentProtocol":
        return _from_environment()
    raise AttributeError(name)
