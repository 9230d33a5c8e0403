"""Multi-device catch-up: everything that changed for the caller since a cursor.

Each change carries the new state of what it is about (the whole message, member, settings...),
so replaying changes in order onto any earlier full read converges to the server's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from shared.app.services import Services
from shared.app.views import timestamp
from shared.domain.errors import BadRequest
from shared.domain.models import Actor
from shared.storage import sync as store
from shared.storage.sync import Cursor


def encode_cursor(cursor: Cursor) -> str:
    return f"{cursor[0]}-{cursor[1]}"


def decode_cursor(raw: str) -> Cursor:
    if raw == "0":
        return (0, 0)
    txid, sep, event_id = raw.partition("-")
    if not sep or not txid.isdigit() or not event_id.isdigit():
        raise BadRequest("since is not a cursor this service gave out", code="invalid_cursor")
    return (int(txid), int(event_id))


@dataclass(frozen=True)
class SyncPage:
    changes: list[dict[str, Any]]
    next_cursor: str
    has_more: bool


def sync(svc: Services, actor: Actor, since: str | None, limit: int) -> SyncPage:
    """Without `since`: no changes, just the current cursor (take it before a full read)."""
    with svc.db.transaction() as conn:
        if since is None:
            return SyncPage([], encode_cursor(store.head(conn)), False)
        after = decode_cursor(since)
        changes, has_more = store.changes_for(conn, actor.user_id, after, limit)
        last = changes[-1].cursor if changes else after
        changes = store.drop_hidden(conn, actor.user_id, changes)
    views = [
        {
            "cursor": encode_cursor(c.cursor),
            "event": c.name,
            "conversation_id": c.conversation_id,
            "seq": c.seq,
            "payload": c.payload,
            "created_at": timestamp(c.created_at),
        }
        for c in changes
    ]
    return SyncPage(views, encode_cursor(last), has_more)
