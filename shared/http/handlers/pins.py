"""REST handlers for message pins: /messages/:id/pin and /conversations/:id/pins."""

from __future__ import annotations

from shared.app import pins as uc
from shared.http.params import parse_int
from shared.http.routing import Call, Reply


def pin_message(call: Call) -> Reply:
    return Reply(uc.pin_message(call.services, call.actor, call.path["message_id"]))


def unpin_message(call: Call) -> Reply:
    return Reply(uc.unpin_message(call.services, call.actor, call.path["message_id"]))


def list_pins(call: Call) -> Reply:
    """All of them (at most 10), or a page: `limit` (without it, all) and `offset`."""
    limit = parse_int(call.query.get("limit"), "limit", minimum=1)
    offset = parse_int(call.query.get("offset"), "offset", minimum=0) or 0
    views = uc.list_pins(call.services, call.actor, call.path["conversation_id"])
    page = views[offset:] if limit is None else views[offset : offset + limit]
    meta = {
        "count": len(page),
        "has_more": offset + len(page) < len(views),
        "offset": offset,
        "max": call.services.settings.limits.max_pinned_messages,
    }
    return Reply(page, meta=meta)
