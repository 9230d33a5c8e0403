"""Stand-ins for the sibling services. user-service, media-service and notification-service do not
exist on this machine: each stand-in is a real gRPC server on a real port, generated from the
same protos/ contracts, whose answers a test sets (blocked pairs, refused media, failing with a
status, never answering) and which records every request that reached it, with its metadata.

Nor is there a Google metadata server: `metadata_server()` stands in for it, a real HTTP server
on a port answering what google-auth asks of it for an ID token, minting RS256 tokens with its
own key (whose JWKS it serves at /jwks)."""

from __future__ import annotations

import importlib
import json
import os
import socket
import struct
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import grpc
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa

from shared.devtools.postgres import free_port
from shared.protogen.whispr.media.v1 import media_pb2, media_pb2_grpc
from shared.protogen.whispr.notification.v1 import notification_pb2, notification_pb2_grpc
from shared.protogen.whispr.user.v1 import user_pb2, user_pb2_grpc


@dataclass
class Behaviour:
    """What the stand-in does with the next calls: fail with `fail_with`, hang until released, or answer."""

    fail_with: grpc.StatusCode | None = None
    fail_times: int | None = None  # fail only this many calls (None: until told otherwise)
    hang: bool = False
    released: threading.Event = field(default_factory=threading.Event)
    requests: list[Any] = field(default_factory=list)
    metadata: list[dict[str, str]] = field(default_factory=list)  # each request's, as received
    lock: threading.Lock = field(default_factory=threading.Lock)

    def enter(self, request: Any, context: grpc.ServicerContext) -> None:
        received = {k: v for k, v in context.invocation_metadata() if isinstance(v, str)}
        with self.lock:
            self.requests.append(request)
            self.metadata.append(received)
            failing = self.fail_with
            if failing is not None and self.fail_times is not None:
                if self.fail_times <= 0:
                    failing = None
                else:
                    self.fail_times -= 1
        if self.hang:
            self.released.wait(60)
        if failing is not None:
            context.abort(failing, f"stand-in failing with {failing.name}")

    @property
    def calls(self) -> int:
        with self.lock:
            return len(self.requests)


class UserServiceStandIn(user_pb2_grpc.UserServiceServicer):
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.blocks: set[tuple[str, str]] = set()  # (blocker, blocked)

    def CheckUserBlocks(
        self, request: user_pb2.CheckUserBlocksRequest, context: Any
    ) -> user_pb2.CheckUserBlocksResponse:
        self.behaviour.enter(request, context)
        out = []
        for other in request.other_user_ids:
            blocks, blocked_by = (request.user_id, other) in self.blocks, (other, request.user_id) in self.blocks
            if blocks or blocked_by:
                out.append(user_pb2.UserBlock(other_user_id=other, blocks=blocks, blocked_by=blocked_by))
        return user_pb2.CheckUserBlocksResponse(blocks=out)


class MediaServiceStandIn(media_pb2_grpc.MediaServiceServicer):
    def __init__(self) -> None:
        self.behaviour = Behaviour()
        self.refused: dict[str, str] = {}  # media id -> reason
        self.refused_in: dict[tuple[str, str], str] = {}  # (media id, conversation id) -> reason
        self.unknown: set[str] = set()

    def ValidateMediaAccess(
        self, request: media_pb2.ValidateMediaAccessRequest, context: Any
    ) -> media_pb2.ValidateMediaAccessResponse:
        self.behaviour.enter(request, context)
        if request.media_id in self.unknown:
            context.abort(grpc.StatusCode.NOT_FOUND, "no such media")
        reason = self.refused.get(request.media_id) or self.refused_in.get((request.media_id, request.conversation_id))
        metadata = media_pb2.MediaMetadata(media_id=request.media_id, owner_id=request.user_id, mime_type="image/png")
        return media_pb2.ValidateMediaAccessResponse(
            allowed=reason is None, reason=reason or "", metadata=metadata, permissions=["read"]
        )


class NotificationServiceStandIn(notification_pb2_grpc.NotificationServiceServicer):
    def __init__(self) -> None:
        self.behaviour = Behaviour()

    def SendMessageNotification(
        self, request: notification_pb2.SendMessageNotificationRequest, context: Any
    ) -> notification_pb2.SendMessageNotificationResponse:
        self.behaviour.enter(request, context)
        return notification_pb2.SendMessageNotificationResponse(queued_count=len(request.recipient_ids))

    def MarkNotificationsAsRead(
        self, request: notification_pb2.MarkNotificationsAsReadRequest, context: Any
    ) -> notification_pb2.MarkNotificationsAsReadResponse:
        self.behaviour.enter(request, context)
        return notification_pb2.MarkNotificationsAsReadResponse(updated_count=1)


@dataclass
class Siblings:
    users: UserServiceStandIn
    media: MediaServiceStandIn
    notifications: NotificationServiceStandIn
    endpoint: str  # all three services on one server

    def release(self) -> None:
        for b in (self.users.behaviour, self.media.behaviour, self.notifications.behaviour):
            b.hang = False
            b.released.set()


@contextmanager
def sibling_servers() -> Iterator[Siblings]:
    """One real gRPC server on a free port serving the three stand-ins."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    siblings = Siblings(UserServiceStandIn(), MediaServiceStandIn(), NotificationServiceStandIn(), "")
    user_pb2_grpc.add_UserServiceServicer_to_server(siblings.users, server)
    media_pb2_grpc.add_MediaServiceServicer_to_server(siblings.media, server)
    notification_pb2_grpc.add_NotificationServiceServicer_to_server(siblings.notifications, server)
    port = free_port()
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    siblings.endpoint = f"127.0.0.1:{port}"
    try:
        yield siblings
    finally:
        siblings.release()
        server.stop(0)


IDENTITY_PATH = "/computeMetadata/v1/instance/service-accounts/default/identity"
ACCOUNT_PATH = "/computeMetadata/v1/instance/service-accounts/default/"


@dataclass
class MetadataServer:
    """What the metadata stand-in did and will do: `down` drops every connection unanswered,
    `hold` (when cleared) keeps token requests waiting until it is set, `lifetime` is that of
    the tokens it mints (from `clock`, which a test may move); `audiences` and `tokens` are the
    identity requests and their answers."""

    host: str
    email: str = "whispr-msg-api@whispr-test.iam.gserviceaccount.com"
    lifetime: int = 3600
    down: bool = False
    hold: threading.Event = field(default_factory=threading.Event)
    audiences: list[str] = field(default_factory=list)
    tokens: list[str] = field(default_factory=list)
    refused: int = 0  # requests without `Metadata-Flavor: Google`
    clock: Callable[[], float] = time.time
    key: rsa.RSAPrivateKey = field(default_factory=lambda: rsa.generate_private_key(65537, 2048))
    kid: str = field(default_factory=lambda: uuid.uuid4().hex)
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def jwks_url(self) -> str:
        return f"http://{self.host}/jwks"

    def fetches(self, audience: str) -> int:
        with self.lock:
            return self.audiences.count(audience)

    def mint(self, audience: str) -> str:
        now = int(self.clock())
        claims = {
            "iss": "https://accounts.google.com",
            "aud": audience,
            "azp": "1234567890",
            "sub": "1234567890",
            "email": self.email,
            "email_verified": True,
            "iat": now,
            "exp": now + self.lifetime,
            "jti": uuid.uuid4().hex,  # two tokens minted in the same second differ
        }
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": self.kid})

    def jwks(self) -> dict[str, Any]:
        public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        return {"keys": [{**public, "kid": self.kid, "alg": "RS256", "use": "sig"}]}


def _metadata_handler(server: MetadataServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: str, content_type: str = "application/text") -> None:
            data = body.encode()
            self.send_response(status)
            self.send_header("Metadata-Flavor", "Google")
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:
            if server.down:
                self.close_connection = True  # as if nothing listened: no answer at all
                return
            url = urlsplit(self.path)
            if url.path == "/jwks":
                self._answer(200, json.dumps(server.jwks()), "application/json")
                return
            if self.headers.get("Metadata-Flavor") != "Google":
                with server.lock:
                    server.refused += 1
                self._answer(403, "Missing required header: Metadata-Flavor")
                return
            if url.path == "/":  # google-auth's ping
                self._answer(200, "computeMetadata/")
            elif url.path == ACCOUNT_PATH:
                account = {"email": server.email, "aliases": ["default"], "scopes": []}
                self._answer(200, json.dumps(account), "application/json")
            elif url.path == IDENTITY_PATH:
                audience = parse_qs(url.query).get("audience", [""])[0]
                if not audience:
                    self._answer(400, "non-empty audience parameter required")
                    return
                server.hold.wait(60)
                token = server.mint(audience)
                with server.lock:
                    server.audiences.append(audience)
                    server.tokens.append(token)
                self._answer(200, token)
            else:
                self._answer(404, "not found")

    return Handler


@contextmanager
def metadata_server() -> Iterator[MetadataServer]:
    """The metadata stand-in on a free port (token requests answered at once until `hold` is cleared)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = MetadataServer(host=f"127.0.0.1:{httpd.server_address[1]}")
    state.hold.set()
    httpd.RequestHandlerClass = _metadata_handler(state)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.hold.set()
        httpd.shutdown()
        httpd.server_close()


def metadata_env(server: MetadataServer) -> dict[str, str]:
    """The variables that point google-auth at the stand-in: GCE_METADATA_HOST for its requests,
    GCE_METADATA_IP for its ping (it reads both, verified in google-auth 2.63); no key file."""
    return {"GCE_METADATA_HOST": server.host, "GCE_METADATA_IP": server.host, "GCE_METADATA_MTLS_MODE": "none"}


@contextmanager
def google_auth_pointed_at(server: MetadataServer) -> Iterator[None]:
    """This process's google-auth talks to the stand-in. A process started with metadata_env()
    needs nothing more; but google-auth reads GCE_METADATA_HOST once, when
    google.auth.compute_engine._metadata is first imported, so here, where another test may
    have imported it already, the module is reloaded after the variables are set and again
    after they are restored."""
    saved = {name: os.environ.get(name) for name in [*metadata_env(server), "GOOGLE_APPLICATION_CREDENTIALS"]}
    os.environ.update(metadata_env(server))
    os.environ.pop("GOOGLE_APPLICATION_CREDENTIALS", None)
    _reload_metadata_module()
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        _reload_metadata_module()


def _reload_metadata_module() -> None:
    module = sys.modules.get("google.auth.compute_engine._metadata")
    if module is None:
        importlib.import_module("google.auth.compute_engine._metadata")
    else:
        importlib.reload(module)


@contextmanager
def refusing_front_end(status: int = 403) -> Iterator[str]:
    """A real HTTP/2 server on a port (prior knowledge, as gRPC speaks it) answering every
    request with a bare HTTP `status` and no gRPC status: what Cloud Run's front end does when
    IAM refuses the caller (401 without a valid token, 403 for an identity that is not a
    roles/run.invoker of the service). Yields its `host:port`."""
    listener = socket.create_server(("127.0.0.1", 0))
    stopping = threading.Event()

    def frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
        return len(payload).to_bytes(3, "big") + bytes([kind, flags]) + struct.pack(">I", stream) + payload

    def answer(conn: socket.socket) -> None:
        data = b""

        def read(n: int) -> bytes:
            nonlocal data
            while len(data) < n:
                chunk = conn.recv(65536)
                if not chunk:
                    raise EOFError
                data += chunk
            out, data = data[:n], data[n:]
            return out

        with conn:
            try:
                read(24)  # the client's connection preface
                conn.sendall(frame(0x4, 0, 0))  # our SETTINGS
                while True:
                    head = read(9)
                    kind, flags, stream = head[3], head[4], int.from_bytes(head[5:9], "big") & 0x7FFFFFFF
                    read(int.from_bytes(head[:3], "big"))
                    if kind == 0x4 and not flags & 0x1:
                        conn.sendall(frame(0x4, 0x1, 0))  # SETTINGS ACK
                    elif kind == 0x1:  # HEADERS of a request: `:status` (static index 8), end of stream
                        block = bytes([0x08, 3]) + str(status).encode()
                        conn.sendall(frame(0x1, 0x4 | 0x1, stream, block))
            except (EOFError, OSError):
                pass

    def accept() -> None:
        while not stopping.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            threading.Thread(target=answer, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stopping.set()
        listener.close()
