"""The local gateway: every function's routes under `/messaging/api/v1` and `/api/v1` on one
port, as API Gateway does in GCP."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route as StarletteRoute

from shared.app.services import Services
from shared.auth.tokens import TokenVerifier
from shared.http.api import Api
from shared.http.routes import ROUTES

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]


def create_gateway(services: Services, verifier: TokenVerifier) -> Starlette:
    api = Api(services, verifier, ROUTES, cors_origins=services.settings.cors_origins)

    async def serve(request: Request) -> Response:
        return await api(request)

    return Starlette(routes=[StarletteRoute("/{path:path}", serve, methods=METHODS)])
