"""The relay's entry point: authenticate the upgrade, count sockets per IP, run the connection.

`relay_routes` gives the WebSocket routes the local gateway mounts next to REST; `create_relay_app`
is the relay alone (the Cloud Run service).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import re
from collections.abc import AsyncIterator, Sequence
from typing import Any
from urllib.parse import parse_qsl

import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket

from shared.app.services import Services
from shared.app.sibling_events import follow_block_changes
from shared.auth.tokens import TokenVerifier
from shared.config import Settings
from shared.domain.errors import DomainError
from shared.domain.models import Actor
from shared.http.connection_guard import guarded_http_protocol
from shared.http.forwarded import ClientAddress
from shared.ports.state import PresenceDiff, StateStore
from shared.relay import protocol
from shared.relay.batching import SendBatcher
from shared.relay.channels import RelayContext
from shared.relay.hub import Hub
from shared.relay.presence import Presence
from shared.relay.sequencer import missing_messages
from shared.relay.socket import Connection
from shared.relay.typing_indicators import TypingIndicators
from shared.relay.wire import RelayWebSocketProtocol
from shared.telemetry import metrics
from shared.telemetry.context import context_from_headers, request_scope

log = logging.getLogger(__name__)

PATHS = ("/messaging/socket/websocket", "/socket/websocket")
SOCKET_AUDIENCE = "ws"  # short-lived socket tokens; normal access tokens are accepted too
AUTH_TOKEN_PREFIX = "base64url.bearer.phx."


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}


class Relay:
    def __init__(self, services: Services, verifier: TokenVerifier):
        self.services = services
        self.verifier = verifier
        limits = services.settings.limits
        self.hub = Hub(
            services.bus, fill=functools.partial(missing_messages, services), gap_seconds=limits.ws_gap_fill_seconds
        )
        presence: StateStore = services.state or Presence(away_after_seconds=limits.presence_away_seconds)
        workers = anyio.CapacityLimiter(services.settings.relay_workers)  # REST keeps the default limiter's
        self.ctx = RelayContext(
            services=services,
            hub=self.hub,
            presence=presence,
            typing=TypingIndicators(self.hub.publish_ephemeral, limits.typing_expiry_seconds),
            sends=SendBatcher(services, workers),
            workers=workers,
        )
        # Presence diffs go through the bus, so every instance's sockets on the topic hear them.
        self._unlisten_presence = presence.subscribe(self._presence_changed)
        self._unfollow_blocks = follow_block_changes(services)  # user.blocked & co. reach every relay
        self._upkeep: asyncio.Task[None] | None = None
        self._per_ip: dict[str, int] = {}
        self._connections: set[Connection] = set()  # served now (the drain tells each to go)
        self._all_gone: asyncio.Event | None = None  # draining: set once the last one has ended
        self._client_address = ClientAddress(services.settings.trusted_proxy_hops, services.settings.trusted_proxies)
        redact_tokens_in_server_logs()

    def _presence_changed(self, diffs: Sequence[PresenceDiff]) -> None:
        """From the state store, in any thread, once the store has the change."""
        for diff in diffs:
            conversation_id = diff.topic.split(":", 1)[1] if diff.topic.startswith("conversation:") else None
            self.hub.announce("presence_diff", diff.topic, diff.payload(), conversation_id)

    async def _presence_upkeep(self) -> None:
        """Sessions go away after idling; a shared store also ends the sessions of instances that
        stopped heartbeating (their diffs come back through `_presence_changed`)."""
        period = self.services.settings.presence_tick_seconds
        while True:
            await asyncio.sleep(period)
            try:
                await anyio.to_thread.run_sync(self.ctx.presence.tick)
            except Exception:
                log.exception("presence upkeep failed")

    def routes(self) -> list[BaseRoute]:
        return [WebSocketRoute(path, SocketApp(self)) for path in PATHS]

    async def _authenticate(self, websocket: WebSocket) -> tuple[Actor, protocol.Version]:
        query = _query(websocket)
        version = protocol.parse_version(query.get("vsn"))
        if version is None:
            raise Refused(400, "unsupported_vsn", "vsn must be 1.0.0 or 2.0.0")
        token = query.get("token", "").strip() or _subprotocol_token(websocket) or ""
        if not token:
            raise Refused(403, "missing_token", "a token query parameter is required")
        try:
            actor = await anyio.to_thread.run_sync(self._verify, token, limiter=self.ctx.workers)
        except DomainError as error:
            raise Refused(403, error.code, error.message) from error
        claimed = query.get("user_id")
        if claimed is not None and claimed.lower() != actor.user_id:
            raise Refused(403, "user_mismatch", "user_id does not match the token")
        return actor, version

    def _verify(self, token: str) -> Actor:
        """An access token, or a socket token (audience `ws`)."""
        try:
            return self.verifier.verify(token)
        except DomainError as error:
            try:
                return self.verifier.verify(token, extra_audiences=(SOCKET_AUDIENCE,))
            except DomainError:
                raise error from None

    def _served_until(self, actor: Actor) -> float | None:
        """When the socket stops being served (wall clock): the token's expiry plus the leeway
        the verifier allows. The client reconnects with a fresh token (docs/realtime.md)."""
        expires = actor.claims.get("exp")
        if isinstance(expires, bool) or not isinstance(expires, (int, float)):
            return None
        return float(expires) + self.verifier.leeway

    async def endpoint(self, websocket: WebSocket, send: Send | None = None) -> None:
        """Serve one socket; `send`: the server's own ASGI send, for frames written without
        Starlette's wrappers (`Connection`)."""
        self.hub.attach(asyncio.get_running_loop())
        if self._upkeep is None or self._upkeep.done():
            self._upkeep = asyncio.get_running_loop().create_task(self._presence_upkeep(), name="presence upkeep")
        ip = self._client_address.of_scope(websocket.scope)
        limit = self.services.settings.limits.ws_sockets_per_ip
        try:
            self._refuse_while_draining()
            actor, version = await self._authenticate(websocket)
            self._refuse_while_draining()  # the signal may have come while the token was checked
            if self._per_ip.get(ip, 0) >= limit:
                raise Refused(429, "too_many_connections", f"at most {limit} sockets per address", {"retry_after": 1})
        except Refused as refused:
            await _refuse(websocket, refused)
            return
        self._per_ip[ip] = self._per_ip.get(ip, 0) + 1
        subprotocol = "phoenix" if "phoenix" in websocket.scope.get("subprotocols", []) else None
        try:
            with request_scope(context_from_headers(websocket.headers.get)):  # the socket's lines share an id
                log.debug("socket open for user %s", actor.user_id)
                metrics.SOCKETS_OPEN.inc()
                served_until = self._served_until(actor)
                connection = Connection(self.ctx, websocket, actor, version, subprotocol, send, served_until)
                self._connections.add(connection)
                try:
                    await connection.serve()
                finally:
                    metrics.SOCKETS_OPEN.dec()
                    self._connections.discard(connection)
                    if not self._connections and self._all_gone is not None:
                        self._all_gone.set()
                log.debug("socket closed for user %s", actor.user_id)
        finally:
            left = self._per_ip.get(ip, 1) - 1
            if left > 0:
                self._per_ip[ip] = left
            else:
                self._per_ip.pop(ip, None)

    def _refuse_while_draining(self) -> None:
        if self.services.draining.is_set():
            raise Refused(503, "draining", "this instance is shutting down: connect again", {"retry_after": 1})

    async def drain(self, until: float) -> None:
        """The process is stopping (SIGTERM; `shared.relay.shutdown`): tell every socket to
        reconnect elsewhere, spread over the first half of the time left so that their
        reconnections do not all reach the other instances at once; each answers what it had
        admitted first. Then the group commit's last batches commit. `until`: the loop's clock;
        the caller bounds the whole."""
        self.services.draining.set()
        loop = asyncio.get_running_loop()
        start = loop.time()
        spread = max(0.0, (until - start) / 2)
        connections = list(self._connections)
        log.info("draining %d sockets over %.1f s", len(connections), spread)
        self._all_gone = asyncio.Event()
        for i, connection in enumerate(connections):
            wait = start + spread * i / len(connections) - loop.time()
            if wait > 0.01:  # sockets due closer together than this go in one batch
                await asyncio.sleep(wait)
            connection.drain(until)
        for connection in list(self._connections):  # any that came in meanwhile (drain is idempotent)
            connection.drain(until)
        if self._connections:
            await self._all_gone.wait()
        await self.ctx.sends.drain()
        log.info("sockets drained")

    def close(self) -> None:
        self._unlisten_presence()
        self._unfollow_blocks()
        if self._upkeep is not None:
            self._upkeep.cancel()
        self.ctx.sends.close()
        self.hub.close()


class SocketApp:
    """The socket routes' endpoint as a plain ASGI app. Given a function, Starlette wraps it in
    two more coroutines and their closures, which live as long as the socket (about 1.5 KB each
    socket); nothing is lost: the relay raises no exception for Starlette's handlers."""

    __slots__ = ("relay",)

    def __init__(self, relay: Relay):
        self.relay = relay

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.relay.endpoint(WebSocket(scope, receive, send), send)


class SocketsFirst(Starlette):
    """A Starlette application that hands the relay's socket upgrades to the relay directly,
    before its middleware and router, and everything else to them as usual.

    A socket's serving task lives as long as the socket, and so does every coroutine it went
    through: Starlette's error and exception middleware, its router, the route's handler (six
    frames, a closure and the exception handlers put in the scope) are held by every idle socket
    for nothing, since the relay raises nothing for their handlers and its paths are fixed
    (docs/performance.md, B3). The routes stay in the router too (a path the check here does not
    take, e.g. under a `root_path`, is still served, through them)."""

    def __init__(self, relay: Relay, **kwargs: Any):
        super().__init__(**kwargs)
        self.sockets = SocketApp(relay)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket" and not scope.get("root_path") and scope["path"] in PATHS:
            await self.sockets(scope, receive, send)
        else:
            await super().__call__(scope, receive, send)


def _query(websocket: WebSocket) -> dict[str, str]:
    """The upgrade's query (the last value of a repeated name, as Starlette's `query_params`),
    parsed here rather than through `websocket.query_params`, which would keep a parsed copy,
    token included, on the socket for its whole life."""
    raw = websocket.scope.get("query_string", b"")
    return dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True))


def _subprotocol_token(websocket: WebSocket) -> str | None:
    """phoenix.js 1.8's `authToken`: `Sec-WebSocket-Protocol: phoenix, base64url.bearer.phx.<token>`,
    which keeps the token out of URLs (and so out of access logs)."""
    for offered in websocket.scope.get("subprotocols", []):
        if offered.startswith(AUTH_TOKEN_PREFIX):
            encoded = offered[len(AUTH_TOKEN_PREFIX) :]
            try:
                return base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode("utf-8")
            except (ValueError, UnicodeDecodeError):
                return None
    return None


class RedactTokens(logging.Filter):
    """Socket URLs carry `token=<JWT>`: keep it out of the server's logs."""

    PATTERN = re.compile(r"(token=)[^&\s\"']+")

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "token=" in message:
            record.msg, record.args = self.PATTERN.sub(r"\1[redacted]", message), ()
        return True


def redact_tokens_in_server_logs() -> None:
    for name in ("uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        if not any(isinstance(f, RedactTokens) for f in logger.filters):
            logger.addFilter(RedactTokens())


async def _refuse(websocket: WebSocket, refused: Refused) -> None:
    """Refuse the upgrade: 403 is a close before accepting (every ASGI server answers it with
    HTTP 403); other statuses use the denial-response extension where the server has it, with
    the REST API's error body (uvicorn logs those as a handshake error: harmless)."""
    if refused.status != 403 and "websocket.http.response" in websocket.scope.get("extensions", {}):
        headers = {"Retry-After": str(refused.details["retry_after"])} if "retry_after" in refused.details else None
        body = {"error": refused.message, "code": refused.code, "details": refused.details}
        await websocket.send_denial_response(JSONResponse(body, status_code=refused.status, headers=headers))
    else:
        await websocket.close(code=1008)


def create_relay_app(services: Services, verifier: TokenVerifier) -> Starlette:
    """The relay alone: the socket routes and nothing else."""

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        relay.close()

    from shared.http.api import Api  # here: shared.http imports this module (the gateway)
    from shared.http.routes import routes_of

    relay = Relay(services, verifier)
    metrics.register_services(services)
    health = Api(services, verifier, routes_of("health"))  # the probes' routes, as the functions serve them

    async def probe(request: Request) -> Response:
        return await health(request)

    routes = relay.routes()
    if not metrics_port_of(services.settings):  # else /metrics is on a port of its own (`run`), not the public one
        routes.append(Route("/metrics", metrics.metrics_endpoint))
    routes += [Route(f"{prefix}/health{{rest:path}}", probe) for prefix in ("/messaging/api/v1", "/api/v1")]
    app = SocketsFirst(relay, routes=routes, lifespan=lifespan)
    app.state.relay = relay  # drained on SIGTERM (shared/relay/shutdown.py)
    return app


def metrics_port_of(settings: Settings) -> int:
    """The port the relay serves /metrics on apart from its own (WHISPR_METRICS_PORT: on Cloud Run
    the one Google's Managed Prometheus sidecar scrapes inside the instance, which takes no
    requests from outside, terraform/run.tf), or 0: /metrics is a route of the relay's port."""
    return settings.metrics_port if settings.metrics_port != settings.port else 0


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """How uvicorn serves the service, for every way it starts (`dev`, `relay`, the tests).

    httptools with a header-read timeout and a cap on the connections held at once
    (shared/http/connection_guard.py).

    No proxy headers: uvicorn would believe X-Forwarded-For from any allowed address (and take
    the entry the client wrote); the relay finds the client's address itself, from the
    configured proxies only (shared/http/forwarded.py).

    websockets' sans-I/O protocol (no task of its own per socket), as the relay extends it
    (`shared.relay.wire`: frames written straight to the transport, coalesced), and no
    permessage-deflate: its zlib contexts cost tens of KB per socket that offers it (browsers
    do), more than the rest of the socket; Phoenix frames are small JSON, and a client must
    accept a server that declines the extension (RFC 7692).

    Frames over `WHISPR_WS_MAX_FRAME_BYTES` are read and refused with an error reply (the socket
    stays); only past the hard cap (`WHISPR_WS_FRAME_HARD_CAP_BYTES`) does the server stop
    reading and close the socket (1009).

    No WebSocket pings from the server: the relay closes a socket that sent nothing for
    `WHISPR_WS_IDLE_TIMEOUT_SECONDS` (clients heartbeat every 30 s), which is what uvicorn's
    pings (every 20 s) would find out too, and they cost every idle socket a timer and a frame
    each time (B3: 0.7 KB a socket; at 50,000 sockets 2,500 pings a second)."""
    return {
        "http": guarded_http_protocol(settings.max_connections, settings.header_timeout_seconds),
        "proxy_headers": False,
        "ws": RelayWebSocketProtocol,
        "ws_per_message_deflate": False,
        "ws_max_size": settings.limits.ws_frame_hard_cap,
        "ws_ping_interval": None,  # the relay's idle timeout finds dead peers
        "server_header": False,  # no `server: uvicorn`: what runs here is nobody's business
    }


def run(host: str | None = None, port: int | None = None) -> None:
    """Serve the relay alone with uvicorn (`whispr-messaging relay`). Behind Cloud Run's front end
    the client address comes from the X-Forwarded-For entry it appended
    (`WHISPR_TRUSTED_PROXY_HOPS=1`), which is what the per-IP socket limit counts."""
    import uvicorn

    from shared.auth.tokens import build_verifier
    from shared.bootstrap import build_services, settle_interpreter
    from shared.config import get_settings
    from shared.relay.shutdown import serve

    settings = get_settings()
    services = build_services(settings)
    app = create_relay_app(services, build_verifier(settings))
    if services.notifications is not None:
        services.notifications.start()  # pushes to offline members (a relay is long-lived)
    config = uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_config=None,  # uvicorn logs through the one handler, at its levels (shared/telemetry/logs.py)
        log_level=None,
        access_log=False,
        **uvicorn_options(settings),
    )
    settle_interpreter()
    try:
        with metrics.served_apart(services, config.host, metrics_port_of(settings)):
            serve(config, app.state.relay)  # SIGTERM drains the sockets first
    finally:
        services.close()
