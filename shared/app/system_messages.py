"""Messages the service itself writes into a conversation (joins, leaves, renames, roles)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from shared.app.access import topic_conversation, topic_user
from shared.app.services import Unit
from shared.app.views import message_view
from shared.domain.models import Actor, Conversation, Event, Member, Message
from shared.storage import conversations as conv_store
from shared.storage import messages as msg_store
from shared.storage import search as search_index


def store_message(unit: Unit, conv: Conversation, message: Message, *, members: list[Member] | None = None) -> Message:
    """Give the message the next `seq`, store it, and record `new_message` for everyone who
    hears it: the conversation topic and every other active member's `user:` topic. `members`:
    the active members if the caller has read them since it locked the conversation (sends do)."""
    message.seq = conv_store.next_seq(unit.conn, conv.id, unit.now)
    conv.last_seq = message.seq
    msg_store.insert_message(unit.conn, message)
    search_index.index_message(unit.conn, conv, message)  # same transaction: searchable once committed
    if members is None:
        members = conv_store.list_members(unit.conn, conv.id)
    topics = (topic_conversation(conv.id), *[topic_user(m.user_id) for m in members if m.user_id != message.sender_id])
    unit.record(
        Event("new_message", {"message": message_view(message)}, topics, conversation_id=conv.id, seq=message.seq)
    )
    return message


def post_system_message(unit: Unit, conv: Conversation, actor: Actor, action: str, details: dict[str, Any]) -> Message:
    message = Message(
        id=str(uuid.uuid4()),
        conversation_id=conv.id,
        seq=0,
        sender_id=actor.user_id,
        sender_device_id=actor.device_id,
        client_random=secrets.randbits(32),
        message_type="system",
        content=action,
        metadata={"system": {"action": action, "actor_id": actor.user_id, **details}},
        reply_to_id=None,
        forwarded_from_id=None,
        signature=None,
        sender_public_key=None,
        sent_at=unit.now,
    )
    return store_message(unit, conv, message)
