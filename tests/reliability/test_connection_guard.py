"""Issue 10, item 7: a connection that is slow to send its headers is closed (slowloris), and
one process holds at most `WHISPR_MAX_CONNECTIONS` connections, HTTP and WebSocket alike; past
it a new connection is answered 503 with Retry-After and closed. Raw TCP sockets, as an
attacker writes them."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

from tests.relay.conftest import ServeWith
from tests.relay.phx import Phx
from tests.support import BASE, RunningServer

WAIT = 30.0  # bound on waiting for the server to act (the test waits for the close, not for time)


def _connect(server: RunningServer) -> socket.socket:
    address = urlsplit(server.url)
    sock = socket.create_connection((address.hostname, address.port), timeout=WAIT)
    return sock


def _closed_by_server(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (fails if it never does)."""
    received = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return received
        if not chunk:
            return received
        received += chunk


def _health(sock: socket.socket) -> bytes:
    sock.sendall(f"GET {BASE}/health HTTP/1.1\r\nHost: test\r\n\r\n".encode())
    return sock.recv(65536)


def test_a_connection_slow_to_send_its_headers_is_closed(serve_with: ServeWith) -> None:
    server = serve_with(header_timeout_seconds=0.5)
    partial = [_connect(server) for _ in range(20)]
    silent = _connect(server)
    try:
        for sock in partial:  # the headers begun, never finished
            sock.sendall(f"GET {BASE}/health HTTP/1.1\r\nHost: test\r\nX-Slow: ".encode())
        for sock in [*partial, silent]:
            assert _closed_by_server(sock) == b""
        # a well-behaved client meanwhile, and after
        fine = _connect(server)
        assert _health(fine).startswith(b"HTTP/1.1 200")
        fine.close()
    finally:
        for sock in [*partial, silent]:
            sock.close()


def test_the_next_request_on_a_kept_alive_connection_is_timed_too(serve_with: ServeWith) -> None:
    server = serve_with(header_timeout_seconds=0.5)
    sock = _connect(server)
    try:
        assert _health(sock).startswith(b"HTTP/1.1 200")  # kept alive
        sock.sendall(f"GET {BASE}/health HTTP/1.1\r\nHost: te".encode())  # then a slow one
        assert _closed_by_server(sock) == b""
    finally:
        sock.close()


def test_connections_beyond_the_cap_get_503_and_a_slot_frees_when_one_closes(serve_with: ServeWith) -> None:
    server = serve_with(max_connections=4, header_timeout_seconds=600)
    user = server.client()
    token = server.token(user.user_id)
    sockets = [Phx.open(server, user.user_id, token=token) for _ in range(2)]  # WebSockets count
    idle = [_connect(server) for _ in range(2)]
    try:
        for sock in sockets:  # the upgrades are done: all four are held
            assert sock.reply(sock.push("phoenix", "heartbeat", {}, join_ref=None)).payload["status"] == "ok"
        refused = _connect(server)
        answer = _closed_by_server(refused)
        refused.close()
        assert answer.startswith(b"HTTP/1.1 503"), answer
        assert b"retry-after: 1" in answer.lower() and b'"code":"too_many_connections"' in answer
        # the sockets already open are unaffected
        assert sockets[0].reply(sockets[0].push("phoenix", "heartbeat", {}, join_ref=None)).payload["status"] == "ok"
        idle.pop().close()
        deadline = time.monotonic() + WAIT  # the server notices the close asynchronously
        while True:
            sock = _connect(server)
            try:
                answer = _health(sock)
            except OSError:  # refused before the request was written
                answer = b""
            finally:
                sock.close()
            if answer.startswith(b"HTTP/1.1 200"):
                break
            assert answer in (b"",) or answer.startswith(b"HTTP/1.1 503"), answer
            assert time.monotonic() < deadline, "a closed connection's slot was never freed"
    finally:
        for phx in sockets:
            phx.close()
        for sock in idle:
            sock.close()
