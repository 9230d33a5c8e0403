"""Messages the service itself writes into a conversation (joins, leaves, renames, roles)."""

from __future__ import annotations

import secrets
import uuid
from typing import Any

from shared.app.message_log import store_message
from shared.app.services import Unit
from shared.domain.models import Actor, Conversation, Message


def post_system_message(
    unit: Unit,
    conv: Conversation,
    actor: Actor,
    action: str,
    details: dict[str, Any],
    client_random: int | None = None,
) -> Message:
    message = Message(
        id=str(uuid.uuid4()),
        conversation_id=conv.id,
        seq=0,
        sender_id=actor.user_id,
        sender_device_id=actor.device_id,
        client_random=secrets.randbits(32) if client_random is None else client_random,
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
