"""REST handler for GET /sync."""

from __future__ import annotations

from shared.app import sync as uc
from shared.http.params import parse_int
from shared.http.routing import Call, Reply

DEFAULT_LIMIT = 500
MAX_LIMIT = 1000


def sync(call: Call) -> Reply:
    limit = parse_int(call.query.get("limit"), "limit", minimum=1) or DEFAULT_LIMIT
    page = uc.sync(call.services, call.actor, call.query.get("since"), min(limit, MAX_LIMIT))
    return Reply(
        page.changes, meta={"next_cursor": page.next_cursor, "has_more": page.has_more, "count": len(page.changes)}
    )
