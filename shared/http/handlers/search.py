"""REST handlers for GET /messages/search and GET /conversations/search."""

from __future__ import annotations

import base64
import binascii
from datetime import datetime

import orjson

from shared.app import search as uc
from shared.domain.errors import BadRequest
from shared.domain.ids import parse_uuid
from shared.http.params import parse_int
from shared.http.routing import Call, Reply
from shared.storage.search import Cursor


def encode_cursor(cursor: Cursor) -> str:
    raw = orjson.dumps([cursor.sent_at.isoformat(), cursor.message_id])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str) -> Cursor:
    try:
        sent_at, message_id = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        when = datetime.fromisoformat(sent_at)
        if when.tzinfo is None:
            raise ValueError("naive time")
        return Cursor(when, parse_uuid(str(message_id), "cursor", invalid=ValueError))
    except (binascii.Error, ValueError, TypeError, orjson.JSONDecodeError):
        raise BadRequest("cursor is not valid", code="invalid_cursor", details={"cursor": ["not valid"]}) from None


def search_messages(call: Call) -> Reply:
    """`query` (or `q`), optional `conversation_id`, `limit` (default 20, capped at 100), `cursor`."""
    limits = call.services.settings.limits
    q = call.query
    limit = parse_int(q.get("limit"), "limit", minimum=1) or limits.search_default_limit
    conversation_id = q.get("conversation_id") or None
    cursor = q.get("cursor") or None
    offset = parse_int(q.get("offset"), "offset", minimum=0) or 0
    results = uc.search_messages(
        call.services,
        call.actor,
        q.get("query") if q.get("query") is not None else q.get("q"),
        conversation_id=parse_uuid(conversation_id, "conversation_id") if conversation_id else None,
        limit=min(limit, limits.search_max_limit),
        after=decode_cursor(cursor) if cursor else None,
        offset=offset,
    )
    meta = {
        "count": len(results.messages),
        "has_more": results.has_more,
        "next_cursor": encode_cursor(results.next_cursor) if results.next_cursor else None,
    }
    return Reply(results.messages, meta=meta)


def search_conversations(call: Call) -> Reply:
    """`q` (or `query`): groups by name, direct conversations by the other member's id; at most
    `limit` of them (all without it)."""
    q = call.query
    limit = parse_int(q.get("limit"), "limit", minimum=1)
    found = uc.search_conversations(
        call.services, call.actor, q.get("q") if q.get("q") is not None else q.get("query"), limit=limit
    )
    return Reply(found.conversations, meta={"count": len(found.conversations), "has_more": found.has_more})
