"""The API's own documentation: the OpenAPI document and an offline page that renders it."""

from __future__ import annotations

from functools import cache
from typing import Any

from shared.http.docs_page import DOCS_PAGE
from shared.http.routing import Call, Reply


@cache
def _document() -> dict[str, Any]:
    from shared.http.openapi import build_document  # late: the route table imports this module

    return build_document()


def openapi_json(call: Call) -> Reply:
    return Reply(_document(), bare=True)


def docs_page(call: Call) -> Reply:
    return Reply(DOCS_PAGE, media_type="text/html; charset=utf-8")
