"""Use cases on drafts: one per user per conversation, synced to the user's other devices
through `draft_updated` on their `user:` topic."""

from __future__ import annotations

from typing import Any

from shared.app.access import require_member, topic_user
from shared.app.services import Services, Unit
from shared.app.views import draft_view
from shared.domain import rules
from shared.domain.models import Actor, Draft, Event
from shared.storage import drafts as store


def _announce(unit: Unit, actor: Actor, conversation_id: str, view: dict[str, Any] | None) -> None:
    payload = {"conversation_id": conversation_id, "draft": view, "device_id": actor.device_id}
    unit.record(Event("draft_updated", payload, (topic_user(actor.user_id),), conversation_id=conversation_id))


def get_draft(svc: Services, actor: Actor, conversation_id: str) -> dict[str, Any] | None:
    """The caller's draft, or None when there is none."""
    with svc.db.transaction() as conn:
        conv, _ = require_member(conn, conversation_id, actor.user_id)
        draft = store.get_draft(conn, conv.id, actor.user_id)
    return draft_view(draft) if draft else None


def save_draft(
    svc: Services, actor: Actor, conversation_id: str, content: str, metadata: dict[str, Any]
) -> dict[str, Any] | None:
    """Replace the caller's draft. An empty one (no content, no metadata) deletes it: clients
    save the cleared input box. Returns the draft, or None when deleted."""
    rules.check_draft(content, metadata, svc.settings.limits)
    if content == "" and not metadata:
        delete_draft(svc, actor, conversation_id)
        return None
    with svc.unit() as unit:
        conv, _ = require_member(unit.conn, conversation_id, actor.user_id)
        draft = Draft(
            conversation_id=conv.id, user_id=actor.user_id, content=content, metadata=metadata, updated_at=unit.now
        )
        store.upsert_draft(unit.conn, draft)
        view = draft_view(draft)
        _announce(unit, actor, conv.id, view)
        return view


def delete_draft(svc: Services, actor: Actor, conversation_id: str) -> bool:
    """Delete the caller's draft; True if there was one (then `draft_updated` with null)."""
    with svc.unit() as unit:
        conv, _ = require_member(unit.conn, conversation_id, actor.user_id)
        if not store.delete_draft(unit.conn, conv.id, actor.user_id):
            return False
        _announce(unit, actor, conv.id, None)
        return True
