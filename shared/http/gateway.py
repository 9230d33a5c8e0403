"""The local gateway: every function's routes under `/messaging/api/v1` and `/api/v1` on one
port, as API Gateway does in GCP, the WebSocket relay at `/messaging/socket/websocket` and
`/socket/websocket`, and, with the dev key only, the web chat at `/messaging/chat/`."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute
from starlette.types import Receive, Scope, Send

from shared.app.services import Services
from shared.auth.tokens import TokenVerifier
from shared.http.api import Api
from shared.http.routes import ROUTES
from shared.http.sends import BatchedSends
from shared.http.web_chat import chat_routes
from shared.relay.server import Relay, SocketsFirst
from shared.telemetry.metrics import metrics_endpoint, register_services

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def create_gateway(services: Services, verifier: TokenVerifier) -> Starlette:
    relay = Relay(services, verifier)  # the WebSocket relay on the same port, as in the local run
    # REST sends join the relay's group commit: one process, one batcher (shared.http.sends)
    sends = BatchedSends(relay.ctx.sends)
    api = Api(services, verifier, ROUTES, cors_origins=services.settings.cors_origins, sends=sends)

    async def serve(request: Request) -> Response:
        return await api(request)

    register_services(services)
    app = SocketsFirst(  # the socket upgrades go to the relay before Starlette's middleware
        relay,
        routes=[
            *relay.routes(),
            StarletteRoute("/metrics", metrics_endpoint, methods=["GET"]),
            *chat_routes(services),
            StarletteRoute("/{path:path}", serve, methods=METHODS),
        ],
    )
    not_found = app.router.default

    async def fallback(scope: Scope, receive: Receive, send: Send) -> None:
        """What the catch-all route cannot match (a path with a newline in it) still gets the
        API's JSON error body, never Starlette's plain-text 404."""
        if scope["type"] != "http":
            await not_found(scope, receive, send)
            return
        response = await api(Request(scope, receive))
        await response(scope, receive, send)

    app.router.default = fallback
    app.state.relay = relay  # drained on SIGTERM (shared/relay/shutdown.py)
    return app
