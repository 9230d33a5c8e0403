"""REST handlers for /conversations: parse, call the use case, shape the reply."""

from __future__ import annotations

import base64
import binascii
from typing import Any

import orjson

from shared.app import conversations as uc
from shared.app.commands import CreateConversation, UpdateConversation, UpdateSettings
from shared.domain.errors import BadRequest, Invalid
from shared.http.params import parse_bool, parse_int
from shared.http.routing import Call, Reply


def _encode_cursor(view: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([view["id"]])).decode().rstrip("=")


def _decode_cursor(raw: str) -> str:
    try:
        value = orjson.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        return str(value[0])
    except (binascii.Error, ValueError, IndexError, TypeError, orjson.JSONDecodeError):
        raise BadRequest("cursor is not valid", code="invalid_cursor") from None


def list_conversations(call: Call) -> Reply:
    include_archived = parse_bool(call.query.get("include_archived"), "include_archived")
    limit = parse_int(call.query.get("limit"), "limit", minimum=1)
    offset = parse_int(call.query.get("offset"), "offset", minimum=0) or 0
    kind = call.query.get("type") or None
    if kind not in (None, "direct", "group"):
        raise Invalid.field("type", "must be direct or group")
    views = uc.list_conversations(call.services, call.actor, archived=None if include_archived else False)
    if kind is not None:
        views = [v for v in views if v["type"] == kind]
    start = offset
    if cursor := call.query.get("cursor"):
        after_id = _decode_cursor(cursor)
        ids = [v["id"] for v in views]
        start = ids.index(after_id) + 1 if after_id in ids else 0
    if limit is None:  # the Whispr client never pages: without a limit, everything
        return Reply(views[start:], meta={"count": len(views[start:]), "has_more": False})
    page = views[start : start + limit]
    has_more = start + limit < len(views)
    meta = {"count": len(page), "has_more": has_more, "next_cursor": _encode_cursor(page[-1]) if has_more else None}
    return Reply(page, meta=meta)


def list_archived(call: Call) -> Reply:
    limit = parse_int(call.query.get("limit"), "limit", minimum=1) or 50
    offset = parse_int(call.query.get("offset"), "offset", minimum=0) or 0
    views = uc.list_conversations(call.services, call.actor, archived=True)
    page = views[offset : offset + limit]
    return Reply(page, meta={"count": len(page), "has_more": offset + limit < len(views), "offset": offset})


def create_conversation(call: Call) -> Reply:
    body: CreateConversation = call.body
    if body.type == "direct":
        other = body.other_user_id
        if other is None:
            others = [u for u in dict.fromkeys(body.user_ids) if u != call.actor.user_id]
            if len(others) != 1:
                raise Invalid.field("other_user_id", "a direct conversation needs exactly one other user")
            other = others[0]
        result = uc.create_direct(call.services, call.actor, other)
    else:
        result = uc.create_group(call.services, call.actor, body.name, body.user_ids, body.metadata)
    return Reply(result.view, status=201 if result.created else 200)


def get_conversation(call: Call) -> Reply:
    return Reply(uc.get_conversation(call.services, call.actor, call.path["conversation_id"]))


def update_conversation(call: Call) -> Reply:
    body: UpdateConversation = call.body
    view = uc.update_conversation(
        call.services, call.actor, call.path["conversation_id"], name=body.name, metadata=body.metadata
    )
    return Reply(view)


def delete_conversation(call: Call) -> Reply:
    uc.delete_conversation(call.services, call.actor, call.path["conversation_id"])
    return Reply.empty()


def get_settings(call: Call) -> Reply:
    return Reply(uc.get_settings(call.services, call.actor, call.path["conversation_id"]))


NULLABLE_SETTINGS = ("muted_until", "custom_name")


def update_settings(call: Call) -> Reply:
    body: UpdateSettings = call.body
    # null clears muted_until and custom_name; for the on/off switches it means "no change"
    # (those columns are NOT NULL: storing it was a 500, found by the schemathesis run)
    changes = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None or k in NULLABLE_SETTINGS}
    return Reply(uc.update_settings(call.services, call.actor, call.path["conversation_id"], changes))


def pin(call: Call) -> Reply:
    return Reply(uc.set_pinned(call.services, call.actor, call.path["conversation_id"], True))


def unpin(call: Call) -> Reply:
    return Reply(uc.set_pinned(call.services, call.actor, call.path["conversation_id"], False))


def archive(call: Call) -> Reply:
    return Reply(uc.set_archived(call.services, call.actor, call.path["conversation_id"], True))


def unarchive(call: Call) -> Reply:
    return Reply(uc.set_archived(call.services, call.actor, call.path["conversation_id"], False))
