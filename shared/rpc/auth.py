"""Who may call the gRPC shim: a sibling service proves its identity with a shared secret in the
metadata `x-whispr-service-secret`, or a Google ID token (`authorization: Bearer <token>`) for
the configured audience, verified against Google's JWKS (or a configured one). Whichever is
configured is accepted; with neither, the shim runs open (local mode, logged once at start).
The health service is always open: Cloud Run's probes carry no credentials."""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc
import jwt

from shared.config import Settings
from shared.rpc.errors import status_for

log = logging.getLogger(__name__)

SECRET_HEADER = "x-whispr-service-secret"
OPEN_PREFIXES = ("/grpc.health.v1.Health/",)
TOKEN_ALGORITHMS = ["RS256", "ES256"]


class CallerCheck:
    """Decides whether the metadata of a call proves a trusted caller: None, or why not."""

    def __init__(self, settings: Settings):
        self.secret = settings.grpc_shared_secret
        self.audience = settings.grpc_audience
        self.issuers = settings.grpc_issuers
        self.callers = settings.grpc_callers
        self.keys = jwt.PyJWKClient(settings.grpc_jwks_url, cache_keys=True, lifespan=3600) if self.audience else None
        if self.open:
            log.warning(
                "gRPC callers are not authenticated (local mode): set WHISPR_GRPC_SHARED_SECRET "
                "and/or WHISPR_GRPC_AUDIENCE outside a development machine"
            )

    @property
    def open(self) -> bool:
        return not self.secret and self.keys is None

    def refusal(self, metadata: dict[str, str]) -> str | None:
        """None when the call is from a trusted caller, else the reason to refuse it."""
        if self.open:
            return None
        secret = metadata.get(SECRET_HEADER)
        if secret is not None:
            if self.secret and hmac.compare_digest(secret.encode(), self.secret.encode()):
                return None
            return "wrong service secret"
        bearer = metadata.get("authorization", "")
        if bearer.lower().startswith("bearer ") and self.keys is not None:
            return self._token_refusal(bearer[7:].strip())
        return "no credentials: send an ID token (authorization: Bearer) or the service secret"

    def _token_refusal(self, token: str) -> str | None:
        assert self.keys is not None
        try:
            key = self.keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=TOKEN_ALGORITHMS,
                audience=self.audience,
                issuer=self.issuers,
                options={"require": ["exp", "iat", "aud", "iss"]},
            )
        except jwt.PyJWKClientError as exc:
            log.warning("gRPC caller token: signing key unavailable: %s", exc)
            return "ID token not verifiable (unknown signing key)"
        except jwt.InvalidTokenError as exc:
            return f"invalid ID token: {exc}"
        if self.callers and str(claims.get("email", "")).lower() not in self.callers:
            return "this caller is not allowed"
        return None


Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Continuation: TypeAlias = "Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]]"


class CallerAuth(grpc.aio.ServerInterceptor):
    """Refuses every call (but health) without trusted credentials: UNAUTHENTICATED, with the
    REST code `unauthorized` in the status details."""

    def __init__(self, check: CallerCheck):
        self.check = check

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or self.check.open or method.startswith(OPEN_PREFIXES):
            return handler
        metadata = {k.lower(): v for k, v in handler_call_details.invocation_metadata or () if isinstance(v, str)}
        reason = await asyncio.to_thread(self.check.refusal, metadata)  # a JWKS fetch may block
        if reason is None:
            return handler
        log.info("gRPC call to %s refused: %s", method, reason)
        return _refuse(handler, reason)


def _refuse(handler: Handler, reason: str) -> Handler:
    status = status_for(grpc.StatusCode.UNAUTHENTICATED, reason, "unauthorized")

    async def deny(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
        await context.abort_with_status(status)

    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny)
    return grpc.unary_unary_rpc_method_handler(deny)
