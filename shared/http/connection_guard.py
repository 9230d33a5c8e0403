"""What uvicorn does not bound by itself: the time a connection may take to send its request's
headers, and the number of connections one process holds.

Without them, a client that opens thousands of connections and sends its headers a byte at a
time (slowloris) holds them, and the process's file descriptors, for as long as it likes:
uvicorn's keep-alive timeout only runs between requests. Here a connection that has not sent
a complete set of headers `header_timeout` seconds after it opened (or after its next request
began) is closed, and past `max_connections` open connections (HTTP and WebSocket alike) a new
one is answered 503 `too_many_connections` with Retry-After and closed at once.

`guarded_http_protocol` gives uvicorn's httptools protocol with both bounds, for
`uvicorn.Config(http=...)` (`shared.relay.server.uvicorn_options`). A socket, once upgraded, is
no longer subject to the header timeout (the relay has its own idle timeout).
"""

from __future__ import annotations

import asyncio
import logging

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger(__name__)


def _refusal(retry_after: int) -> bytes:
    body = orjson.dumps(
        {"error": "the server holds too many connections; retry shortly", "code": "too_many_connections", "details": {}}
    )
    head = (
        "HTTP/1.1 503 Service Unavailable\r\n"
        "content-type: application/json\r\n"
        f"retry-after: {retry_after}\r\n"
        "connection: close\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    )
    return head.encode("ascii") + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header-read timeout and a connection cap (class
    attributes, set by `guarded_http_protocol`)."""

    max_connections = 10_000
    header_timeout = 10.0
    _header_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.max_connections:
            log.warning("refusing a connection: %d open, at most %d", len(self.connections) - 1, self.max_connections)
            transport.write(_refusal(1))
            transport.close()
            return
        self._start_header_timer()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._start_header_timer()  # the next request on a kept-alive connection: its headers, timed too

    def on_headers_complete(self) -> None:
        self._stop_header_timer()
        super().on_headers_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_header_timer()
        super().connection_lost(exc)

    def _start_header_timer(self) -> None:
        if self._header_timer is None:
            self._header_timer = self.loop.call_later(self.header_timeout, self._headers_too_slow)

    def _stop_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if not self.transport.is_closing():
            log.info("closing a connection that sent no complete headers within %ss", self.header_timeout)
            self.transport.close()


def guarded_http_protocol(max_connections: int, header_timeout: float) -> type[GuardedHttpToolsProtocol]:
    return type(
        "GuardedHttpToolsProtocol",
        (GuardedHttpToolsProtocol,),
        {"max_connections": max_connections, "header_timeout": header_timeout},
    )
