"""A message as the caller may see it: shared by the use cases that act on one message."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from shared.app.access import require_message
from shared.domain.errors import NotFound
from shared.domain.models import Conversation, Member, Message
from shared.storage import messages as msg_store


def require_visible_message(
    conn: Connection, message_id: str, user_id: str, now: datetime
) -> tuple[Message, Conversation, Member]:
    """Like `require_message`, and the message is neither expired nor hidden from the caller
    (deleted for them): such messages are not found."""
    message, conv, member = require_message(conn, message_id, user_id)
    if not msg_store.is_visible(conn, message.id, user_id, now):
        raise NotFound("message not found", code="message_not_found")
    return message, conv, member
