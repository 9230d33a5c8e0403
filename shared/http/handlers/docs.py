"""The API's own documentation: the OpenAPI and AsyncAPI documents, the API reference (Swagger
UI, shipped in shared/web/vendor: no CDN) and the socket contract rendered as a page."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from shared.domain.errors import NotFound
from shared.http.routing import Call, Reply

WEB = Path(__file__).resolve().parents[2] / "web"
HTML = "text/html; charset=utf-8"

# what /api/docs/<name> serves: the page's own files and the vendored Swagger UI
ASSETS: dict[str, tuple[Path, str]] = {
    "swagger-ui-bundle.js": (WEB / "vendor" / "swagger-ui" / "swagger-ui-bundle.js", "text/javascript"),
    "swagger-ui.css": (WEB / "vendor" / "swagger-ui" / "swagger-ui.css", "text/css"),
    "docs.js": (WEB / "docs.js", "text/javascript"),
    "docs.css": (WEB / "docs.css", "text/css"),
    "realtime.css": (WEB / "realtime.css", "text/css"),
}


@cache
def _document() -> dict[str, Any]:
    from shared.http.openapi import build_document  # late: the route table imports this module

    return build_document()


@cache
def _asyncapi() -> dict[str, Any]:
    from shared.relay.asyncapi import build_document

    return build_document()


@cache
def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def openapi_json(call: Call) -> Reply:
    return Reply(_document(), bare=True)


def asyncapi_json(call: Call) -> Reply:
    return Reply(_asyncapi(), bare=True)


def docs_page(call: Call) -> Reply:
    return Reply(_read(WEB / "docs.html"), media_type=HTML)


def docs_asset(call: Call) -> Reply:
    found = ASSETS.get(call.path["asset"])
    if found is None:
        raise NotFound("no such file", code="route_not_found")
    path, media_type = found
    return Reply(_read(path), media_type=f"{media_type}; charset=utf-8")


@cache
def _realtime_page() -> str:
    from shared.http.realtime_page import render

    return render(_asyncapi())


def realtime_page(call: Call) -> Reply:
    return Reply(_realtime_page(), media_type=HTML)
