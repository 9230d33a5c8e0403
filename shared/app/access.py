"""Who may see what: every conversation route goes through `require_member`."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection

from shared.domain.errors import Forbidden, NotFound
from shared.domain.models import Conversation, Member, Message
from shared.storage import conversations as conv_store
from shared.storage import history as reads
from shared.storage import messages as msg_store


def require_conversation(conn: Connection, conversation_id: str) -> Conversation:
    conv = conv_store.get_conversation(conn, conversation_id)
    if conv is None or not conv.is_active:
        raise NotFound("conversation not found", code="conversation_not_found")
    return conv


def require_member(conn: Connection, conversation_id: str, user_id: str) -> tuple[Conversation, Member]:
    """The conversation and the caller's active membership, or 404/403."""
    conv = require_conversation(conn, conversation_id)
    member = conv_store.get_member(conn, conversation_id, user_id)
    if member is None or not member.is_active:
        raise Forbidden("you are not a member of this conversation", code="not_a_member")
    return conv, member


def require_message(conn: Connection, message_id: str, user_id: str) -> tuple[Message, Conversation, Member]:
    """A message the caller can see: its conversation's member, and not hidden or expired.
    Messages of conversations the caller is not in are reported as not found."""
    message = msg_store.get_message(conn, message_id)
    if message is None:
        raise NotFound("message not found", code="message_not_found")
    conv = conv_store.get_conversation(conn, message.conversation_id)
    member = conv_store.get_member(conn, message.conversation_id, user_id)
    if conv is None or not conv.is_active or member is None or not member.is_active:
        raise NotFound("message not found", code="message_not_found")
    return message, conv, member


def topic_conversation(conversation_id: str) -> str:
    return f"conversation:{conversation_id}"


def topic_user(user_id: str) -> str:
    return f"user:{user_id}"


def require_reader(conn: Connection, conversation_id: str, user_id: str) -> list[Member]:
    """`require_member` for reads, in one statement: 404 if the conversation is missing or
    inactive, 403 if the caller is not an active member; else its active members."""
    found = reads.access(conn, conversation_id)
    if not found.exists or not found.is_active:
        raise NotFound("conversation not found", code="conversation_not_found")
    if found.member(user_id) is None:
        raise Forbidden("you are not a member of this conversation", code="not_a_member")
    return found.members


def require_visible_message(
    conn: Connection, message_id: str, user_id: str, now: datetime
) -> tuple[Message, list[Member]]:
    """`require_message` plus visibility, in two statements: a message the caller may see now
    (an active member of its active conversation, not hidden by them, not expired) and the
    conversation's active members; anything else is reported as not found."""
    found = reads.get_visible_message(conn, message_id, user_id, now)
    if found is not None:
        message, visible = found
        conv = reads.access(conn, message.conversation_id)
        if visible and conv.is_active and conv.member(user_id) is not None:
            return message, conv.members
    raise NotFound("message not found", code="message_not_found")
