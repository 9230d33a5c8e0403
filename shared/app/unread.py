"""Mark unread: move the caller's read watermark back to just before a message."""

from __future__ import annotations

from typing import Any

from shared.app.access import topic_user
from shared.app.services import Services
from shared.app.visibility import require_visible_message
from shared.domain import rules
from shared.domain.models import Actor, Event
from shared.storage import conversations as conv_store
from shared.storage import unread as store


def mark_unread(svc: Services, actor: Actor, message_id: str) -> dict[str, Any]:
    """Make this message and everything after it unread for the caller (all their devices).
    If the watermark moved, record `message_unread` for the caller's other devices and for the
    senders of the messages now unread (their read tick goes back to delivered), unless the
    caller turned read receipts off: then those senders never saw "read" and learn nothing."""
    with svc.unit() as unit:
        message, conv, me = require_visible_message(unit.conn, message_id, actor.user_id, unit.now)
        watermark = rules.unread_watermark(message.seq)
        moved = me.last_read_seq > watermark
        if moved:
            senders = store.senders_between(unit.conn, conv.id, watermark, me.last_read_seq, actor.user_id)
            store.rewind_read(unit.conn, conv.id, actor.user_id, watermark, unit.now)
            told = senders if me.show_read_receipts else []
            payload = {
                "message_id": message.id,
                "conversation_id": conv.id,
                "user_id": actor.user_id,
                "last_read_seq": watermark,
                "device_id": actor.device_id,
            }
            topics = tuple(dict.fromkeys([topic_user(actor.user_id), *[topic_user(s) for s in told]]))
            unit.record(Event("message_unread", payload, topics, conversation_id=conv.id))
        unread = conv_store.unread_counts(unit.conn, actor.user_id, [conv.id]).get(conv.id, 0)
        return {
            "conversation_id": conv.id,
            "user_id": actor.user_id,
            "message_id": message.id,
            "last_read_seq": watermark if moved else me.last_read_seq,
            "unread_count": unread,
        }
