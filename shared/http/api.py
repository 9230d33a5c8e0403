"""The HTTP entry point shared by every function and the local gateway: authenticate, parse,
call the route's handler in a worker thread, render the contract's success or error body."""

from __future__ import annotations

import hashlib
import logging
import re
import time
from base64 import b64encode
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import anyio.to_thread
import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from shared.app.services import Services
from shared.auth.tokens import TokenVerifier
from shared.domain import nesting, rules
from shared.domain.errors import (
    BadRequest,
    DomainError,
    Invalid,
    MethodNotAllowed,
    NotFound,
    TooLarge,
    Unauthorized,
)
from shared.domain.ids import parse_uuid
from shared.domain.models import Actor
from shared.http.routing import Call, Reply, Route, RouteTable
from shared.http.sends import DirectSends, SendPort
from shared.telemetry import tracing
from shared.telemetry.context import REQUEST_ID_HEADER, context_from_headers, request_scope
from shared.telemetry.logs import log_access
from shared.telemetry.metrics import observe_request

log = logging.getLogger(__name__)

PREFIXES = ("/messaging/api/v1", "/api/v1", "/messaging")
ANONYMOUS = Actor(user_id="")
CORS_HEADERS = "authorization, content-type, x-request-id, traceparent"
CORS_METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"


# Every answer: never cached (they are a user's messages), never sniffed as another type.
SECURITY_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
_INLINE = re.compile(r"<(script|style)(?:\s[^>]*)?>(.*?)</\1>", re.DOTALL | re.IGNORECASE)


@lru_cache(maxsize=16)
def page_policy(page: str) -> str:
    """The Content-Security-Policy of one of our HTML pages: its own files and its own inline
    blocks (by hash) only, nothing from elsewhere, and no framing (clickjacking)."""
    hashes: dict[str, list[str]] = {"script": [], "style": []}
    for kind, body in _INLINE.findall(page):
        if body.strip():
            digest = b64encode(hashlib.sha256(body.encode("utf-8")).digest()).decode()
            hashes[kind.lower()].append(f"'sha256-{digest}'")
    return "; ".join(
        [
            "default-src 'none'",
            " ".join(["script-src 'self'", *hashes["script"]]),
            " ".join(["style-src 'self'", *hashes["style"]]),
            "img-src 'self' data:",
            "font-src 'self'",
            "connect-src 'self'",
            "base-uri 'none'",
            "form-action 'none'",
            "frame-ancestors 'none'",
        ]
    )


def json_response(body: Any, status: int, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, media_type="application/json", headers=headers)


def error_response(error: DomainError) -> Response:
    retry_after = error.details.get("retry_after")  # rate limited, store unavailable
    headers = {"Retry-After": str(retry_after)} if isinstance(retry_after, int) else None
    if isinstance(error, MethodNotAllowed):  # RFC 9110: a 405 lists the allowed methods
        headers = {"Allow": ", ".join(error.details.get("allowed", []))}
    body = {"error": error.message, "code": error.code, "details": error.details}
    return json_response(body, error.status, headers)


def strip_prefix(path: str) -> str:
    for prefix in PREFIXES:
        if path == prefix or path.startswith(prefix + "/"):
            return path[len(prefix) :] or "/"
    return path


def _validation_details(exc: ValidationError) -> dict[str, list[str]]:
    details: dict[str, list[str]] = {}
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"]) or "body"
        details.setdefault(name, []).append(err["msg"])
    return details


def bearer_token(request: Request) -> str:
    """The caller's token. Behind API Gateway the function receives the gateway's own ID token
    in Authorization and the client's in X-Forwarded-Authorization, so that one comes first."""
    header = request.headers.get("x-forwarded-authorization") or request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("a bearer token is required", code="missing_token")
    return token.strip()


def route_query(route: Route, request: Request) -> dict[str, str]:
    """The query parameters, each one the route declares (`Route.query`, as documented in the
    OpenAPI document): any other is a 400, never silently ignored."""
    query = dict(request.query_params)
    known = {param.name for param in route.query}
    unknown = sorted(name for name in query if name not in known)
    if unknown:
        accepted = ", ".join(sorted(known)) or "none"
        raise BadRequest(
            f"this route does not take the query parameter {', '.join(unknown)} (it takes: {accepted})",
            code="unknown_parameter",
            details={name: ["not a parameter of this route"] for name in unknown},
        )
    return query


class Api:
    def __init__(
        self,
        services: Services,
        verifier: TokenVerifier,
        routes: Iterable[Route],
        *,
        cors_origins: str = "*",
        sends: SendPort | None = None,
    ):
        """`sends`: how the send route stores a message; default, one transaction per send."""
        self.services = services
        self.sends = sends or DirectSends(services)
        self.verifier = verifier
        self.routes = list(routes)
        self._table = RouteTable(self.routes)
        self._origins = {o.strip() for o in cors_origins.split(",") if o.strip()}

    async def __call__(self, request: Request) -> Response:
        """Every line logged while serving the request carries its id (echoed in X-Request-Id);
        one access line ends it."""
        started = time.perf_counter()
        with (
            request_scope(context_from_headers(request.headers.get)) as scope,
            tracing.span(f"HTTP {request.method}", kind=tracing.SERVER, parent=tracing.extract(request.headers)),
        ):
            try:
                response = await self._handle(request)
            except DomainError as error:
                response = error_response(error)
            except ClientDisconnect:
                response = Response(status_code=499)
            except Exception:
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                response = json_response(
                    {"error": "something went wrong on our side", "code": "internal_error", "details": {}}, 500
                )
            self._add_cors(request, response)
            response.headers[REQUEST_ID_HEADER] = scope.request_id
            response.headers.update(SECURITY_HEADERS)
            seconds = time.perf_counter() - started
            route = request.scope.get("whispr_route", "unmatched")
            observe_request(route, request.method, response.status_code, seconds)
            tracing.annotate(**{"http.route": route, "http.response.status_code": response.status_code})
            log_access(
                request.method,
                request.url.path,
                response.status_code,
                seconds,
                remote_ip=request.client.host if request.client else None,
                user_agent=request.headers.get("user-agent"),
                size=len(response.body) if hasattr(response, "body") else 0,
            )
        return response

    def _add_cors(self, request: Request, response: Response) -> None:
        origin = request.headers.get("origin")
        if origin and ("*" in self._origins or origin in self._origins):
            response.headers["Access-Control-Allow-Origin"] = "*" if "*" in self._origins else origin
            response.headers["Vary"] = "Origin"
            response.headers["Access-Control-Expose-Headers"] = REQUEST_ID_HEADER

    async def _handle(self, request: Request) -> Response:
        path = strip_prefix(request.url.path)
        if request.method == "OPTIONS":
            return Response(
                status_code=204,
                headers={
                    "Access-Control-Allow-Methods": CORS_METHODS,
                    "Access-Control-Allow-Headers": CORS_HEADERS,
                    "Access-Control-Max-Age": "600",
                },
            )
        method = "GET" if request.method == "HEAD" else request.method
        route, params, allowed = self._table.match(method, path)
        if route is None:
            if allowed:
                raise MethodNotAllowed(f"{request.method} is not allowed here", details={"allowed": allowed})
            raise NotFound(f"no route for {request.method} {path}", code="route_not_found")
        request.scope["whispr_route"] = route.path  # the template: metrics' label, bounded
        token = bearer_token(request) if route.authenticated else None
        query = route_query(route, request)
        for name, value in params.items():
            params[name] = parse_uuid(value, name) if name.endswith("_id") else value
        body = await self._read_body(request, route)

        def run() -> Reply:
            # the token is checked in the worker thread: a JWKS refetch must not block the loop
            actor = self.verifier.verify(token) if token is not None else ANONYMOUS
            return route.handler(Call(self.services, actor, params, query, body, self.sends, request.headers))

        # a route that can run on the loop does, once the token is known good (its memo): no
        # hop to a worker thread and back (the group commit's sends, shared.http.sends)
        known = self._remembered(token) if route.on_loop is not None else None
        if route.on_loop is not None and known is not None:
            reply = await route.on_loop(Call(self.services, known, params, query, body, self.sends, request.headers))
        else:
            reply = await anyio.to_thread.run_sync(run)
        if reply.status == 204:
            return Response(status_code=204)
        if reply.media_type is not None:
            response = Response(reply.data, status_code=reply.status, media_type=reply.media_type)
            if reply.media_type.startswith("text/html") and isinstance(reply.data, str):
                response.headers["Content-Security-Policy"] = page_policy(reply.data)
                response.headers["X-Frame-Options"] = "DENY"  # frame-ancestors for older browsers
            return response
        if reply.bare:
            return json_response(reply.data, reply.status)
        return json_response({"data": reply.data, "meta": reply.meta}, reply.status)

    def _remembered(self, token: str | None) -> Actor | None:
        """The caller if known without verifying anything now (anonymous, or a token verified
        recently), else None: the token is then verified in a worker thread."""
        return self.verifier.remembered(token) if token is not None else ANONYMOUS

    async def _read_body(self, request: Request, route: Route) -> BaseModel | None:
        if route.body is None:
            return None
        limit = self.services.settings.limits.max_request_bytes
        declared = request.headers.get("content-length")
        if declared and declared.isdigit() and int(declared) > limit:
            raise TooLarge(f"the request body is over {limit} bytes", code="request_too_large")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise TooLarge(f"the request body is over {limit} bytes", code="request_too_large")
            chunks.append(chunk)
        raw = b"".join(chunks)
        data: Any = {}
        if raw.strip():
            max_depth = rules.envelope_depth_limit(self.services.settings.limits)
            try:  # bounded before validation sees it: nothing deeper reaches pydantic or the rules
                data = nesting.loads(raw, max_depth)
            except nesting.TooDeep as exc:
                raise rules.nesting_too_deep("body", max_depth) from exc
            except orjson.JSONDecodeError as exc:
                raise BadRequest(f"the body is not valid JSON: {exc}", code="invalid_json") from exc
        if not isinstance(data, dict):
            raise BadRequest("the body must be a JSON object", code="invalid_json")
        nested = data.get(route.body_key) if route.body_key else None
        if isinstance(nested, dict):
            data = {**{k: v for k, v in data.items() if k != route.body_key}, **nested}
        try:
            return route.body.model_validate(data)
        except ValidationError as exc:
            raise Invalid("the request has invalid fields", details=_validation_details(exc)) from exc
