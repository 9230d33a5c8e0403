"""Use cases on pinned messages: pin, unpin, list a conversation's pins."""

from __future__ import annotations

from typing import Any

from shared.app.access import require_member, require_message, topic_conversation
from shared.app.enforcement import check_can_interact
from shared.app.services import Services
from shared.app.views import pin_view, timestamp
from shared.app.visibility import require_visible_message
from shared.domain import rules
from shared.domain.models import Actor, Event, MessagePin
from shared.storage import conversations as conv_store
from shared.storage import pins as store


def pin_message(svc: Services, actor: Actor, message_id: str) -> dict[str, Any]:
    """Pin a message in its conversation (idempotent). Records `message_pinned`."""
    with svc.unit() as unit:
        message, conv, me = require_visible_message(unit.conn, message_id, actor.user_id, unit.now)
        check_can_interact(unit.conn, conv.id, actor.user_id, unit.now)
        rules.check_pinnable(message, me)
        conv_store.lock_conversation(unit.conn, conv.id)  # the count and the insert are one step
        existing = store.get_pin(unit.conn, message.id)
        if existing is not None:
            return {**pin_view(existing, message), "is_pinned": True}
        rules.check_pin_limit(store.count_live(unit.conn, conv.id, unit.now), svc.settings.limits)
        pin = MessagePin(message_id=message.id, conversation_id=conv.id, pinned_by=actor.user_id, pinned_at=unit.now)
        store.insert_pin(unit.conn, pin)
        view = pin_view(pin, message)
        unit.record(
            Event(
                "message_pinned",
                {**view, "seq": message.seq},
                (topic_conversation(conv.id),),
                conversation_id=conv.id,
                seq=message.seq,
            )
        )
        return {**view, "is_pinned": True}


def unpin_message(svc: Services, actor: Actor, message_id: str) -> dict[str, Any]:
    """Unpin (idempotent). Works on any message of the caller's conversation, even one that has
    since been deleted or has expired. Records `message_unpinned`."""
    with svc.unit() as unit:
        message, conv, me = require_message(unit.conn, message_id, actor.user_id)
        state = {"message_id": message.id, "conversation_id": conv.id, "is_pinned": False}
        existing = store.get_pin(unit.conn, message.id)
        if existing is None:
            return state
        rules.check_unpin(message, me, existing.pinned_by)
        store.delete_pin(unit.conn, message.id)
        payload = {
            "message_id": message.id,
            "conversation_id": conv.id,
            "seq": message.seq,
            "unpinned_by": actor.user_id,
            "unpinned_at": timestamp(unit.now),
        }
        unit.record(
            Event("message_unpinned", payload, (topic_conversation(conv.id),), conversation_id=conv.id, seq=message.seq)
        )
        return state


def list_pins(svc: Services, actor: Actor, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's pinned messages the caller can see, newest pin first."""
    with svc.db.transaction() as conn:
        conv, _ = require_member(conn, conversation_id, actor.user_id)
        pins = store.list_pins(conn, conv.id, actor.user_id, svc.clock())
    return [pin_view(pin, message) for pin, message in pins]
