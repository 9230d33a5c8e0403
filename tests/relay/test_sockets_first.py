"""The relay's socket upgrades go to the relay before Starlette's middleware and router
(shared.relay.server.SocketsFirst): an idle socket's serving task holds none of their frames
(docs/performance.md, B3). Everything else goes through Starlette as before."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import uvicorn
from starlette.types import Message, Receive, Scope, Send
from starlette.websockets import WebSocket

from shared.config import load_settings
from shared.relay.server import PATHS, Relay, SocketsFirst, uvicorn_options
from shared.relay.socket import forget_upgrade


class StubRelay:
    def __init__(self, seen: list[tuple[str, str, str]]):
        self.seen = seen

    async def endpoint(self, websocket: WebSocket, send: Send | None = None) -> None:
        self.seen.append(("relay", websocket.scope["type"], websocket.scope["path"]))


def test_socket_upgrades_reach_the_relay_before_starlette() -> None:
    seen: list[tuple[str, str, str]] = []
    app = SocketsFirst(cast(Relay, StubRelay(seen)), routes=[])

    async def starlette(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(("starlette", scope["type"], scope["path"]))

    app.middleware_stack = starlette

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        pass

    def scope(kind: str, path: str, **more: Any) -> Scope:
        return {"type": kind, "path": path, "headers": [], "query_string": b"", **more}

    async def calls() -> None:
        for path in PATHS:
            await app(scope("websocket", path), receive, send)
        await app(scope("websocket", "/elsewhere"), receive, send)
        await app(scope("http", PATHS[0], method="GET"), receive, send)
        await app(scope("websocket", "/prefix" + PATHS[0], root_path="/prefix"), receive, send)

    asyncio.run(calls())
    assert seen == [
        *[("relay", "websocket", path) for path in PATHS],
        ("starlette", "websocket", "/elsewhere"),
        ("starlette", "http", PATHS[0]),
        ("starlette", "websocket", "/prefix" + PATHS[0]),
    ]


def test_the_server_sends_no_websocket_pings() -> None:
    """The relay's idle timeout ends a socket whose peer is gone; uvicorn's pings would cost
    every idle socket a timer and a frame every 20 s (docs/performance.md, B3)."""
    options = uvicorn_options(load_settings({}))
    assert options["ws_ping_interval"] is None
    config = uvicorn.Config(lambda scope, receive, send: None, **options)
    assert config.ws_ping_interval is None


def test_an_accepted_socket_keeps_nothing_of_its_upgrade() -> None:
    """Headers, the query with its token and the offered subprotocols (phoenix.js 1.8 offers
    the token as one) leave the scope once the socket is accepted: the scope lives as long as
    the socket."""
    scope: Scope = {
        "type": "websocket",
        "path": PATHS[0],
        "headers": [(b"host", b"relay"), (b"x-request-id", b"r-1")],
        "query_string": b"token=secret&vsn=2.0.0",
        "subprotocols": ["phoenix", "base64url.bearer.phx.c2VjcmV0"],
    }

    async def receive() -> Message:
        return {"type": "websocket.connect"}

    async def send(message: Message) -> None:
        pass

    websocket = WebSocket(scope, receive, send)
    assert websocket.headers["x-request-id"] == "r-1"  # read (and cached by Starlette) before
    forget_upgrade(websocket.scope)
    assert websocket.headers.raw == [] and scope["headers"] == []
    assert scope["query_string"] == b"" and scope["subprotocols"] == []
