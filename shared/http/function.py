"""Glue for `functions/<name>/main.py`: one functions-framework HTTP function per resource."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from shared.auth.tokens import build_verifier
from shared.bootstrap import process_services
from shared.config import get_settings
from shared.http.api import Api
from shared.http.routes import routes_of
from shared.telemetry.logs import setup_logging


def resource_function(name: str) -> Callable[[Request], Awaitable[Response]]:
    """An async request handler serving exactly the routes of function `name`, built lazily so
    that importing the module (as functions-framework does) costs nothing."""
    api: Api | None = None
    setup_logging()
    settings = get_settings()  # a bad setting stops the instance from starting (ConfigurationError)

    async def serve(request: Request) -> Response:
        nonlocal api
        if api is None:
            if not logging.getLogger().handlers:  # functions-framework sets none: INFO lines would vanish
                logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s")
            api = Api(process_services(), build_verifier(settings), routes_of(name), cors_origins=settings.cors_origins)
        return await api(request)

    serve.__name__ = name
    return serve
