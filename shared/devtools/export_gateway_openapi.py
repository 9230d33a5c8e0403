"""Write the API Gateway config (Swagger 2.0 with x-google-backend) from the route table.

    python -m shared.devtools.export_gateway_openapi build/openapi-gateway.yaml

GCP API Gateway takes Swagger 2.0, not OpenAPI 3. Every public route is served under
`/messaging/api/v1` (the docs routes under `/messaging/api`) and sent to its function with
`APPEND_PATH_TO_ADDRESS`, so the function sees the full path and strips the prefix itself.
The output is JSON (which is YAML) and a Terraform template: each backend address is
`${backends.<function>}`, filled in by terraform/gateway.tf. Authentication stays in the
functions (the gateway forwards the client's token as X-Forwarded-Authorization).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from shared.devtools.export import export_main
from shared.devtools.export_routes import INTERNAL_FUNCTIONS
from shared.http.openapi import outside_base
from shared.http.routes import ROUTES
from shared.http.routing import Route

BASE = "/messaging/api/v1"
DEADLINE_SECONDS = 30.0


def public_path(route: Route) -> str:
    return "/messaging" + route.path if outside_base(route.path) else BASE + route.path


def _operation(route: Route) -> dict[str, Any]:
    return {
        "operationId": f"{route.function}_{route.handler.__name__}_{route.method.lower()}",
        "summary": route.summary,
        "parameters": [{"name": name, "in": "path", "required": True, "type": "string"} for name in route.params],
        "x-google-backend": {
            "address": "${backends." + route.function + "}",
            "path_translation": "APPEND_PATH_TO_ADDRESS",
            "deadline": DEADLINE_SECONDS,
        },
        "responses": {"default": {"description": "see the service's OpenAPI 3 document"}},
    }


def build_gateway_document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for route in ROUTES:
        if route.function in INTERNAL_FUNCTIONS:
            continue
        paths.setdefault(public_path(route), {})[route.method.lower()] = _operation(route)
    return {
        "swagger": "2.0",
        "info": {"title": "whispr-messaging", "version": "1.0.0"},
        "schemes": ["https"],
        "produces": ["application/json"],
        "paths": paths,
    }


def render() -> str:
    return json.dumps(build_gateway_document(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    return export_main("shared.devtools.export_gateway_openapi", __doc__, render, argv)


if __name__ == "__main__":
    sys.exit(main())
