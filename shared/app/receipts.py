"""Read and delivery watermarks, and the per-message status senders see."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Connection, select

from shared.app.access import require_member, require_message, topic_conversation, topic_user
from shared.app.services import Services, Unit
from shared.domain import rules
from shared.domain.errors import Forbidden, Invalid, NotFound
from shared.domain.models import Actor, Conversation, Event, Member
from shared.storage import conversations as conv_store
from shared.storage import unread as unread_store
from shared.storage.schema import messages

Kind = Literal["read", "delivered"]


def _resolve_seq(conn: Connection, conv: Conversation, up_to_seq: int | None, message_id: str | None) -> int:
    if message_id is not None:
        seq = conn.execute(
            select(messages.c.seq).where(messages.c.id == message_id, messages.c.conversation_id == conv.id)
        ).scalar()
        if seq is None:
            raise NotFound("message not found in this conversation", code="message_not_found")
        return int(seq)
    if up_to_seq is None:
        return conv.last_seq
    if up_to_seq < 0:
        raise Invalid.field("up_to_seq", "must be zero or more")
    return min(up_to_seq, conv.last_seq)


def _announce_receipts(unit: Unit, conv: Conversation, me: Member, kind: Kind, before: int, seq: int) -> None:
    if kind == "read" and not me.show_read_receipts:
        return  # the reader turned read receipts off: senders learn nothing
    for sender, (message_id, _) in unread_store.latest_per_sender(unit.conn, conv.id, before, seq, me.user_id).items():
        unit.record(
            Event(
                "delivery_status",
                {
                    "message_id": message_id,
                    "conversation_id": conv.id,
                    "user_id": me.user_id,
                    "status": kind,
                    "up_to_seq": seq,
                },
                (topic_user(sender),),
                conversation_id=conv.id,
            )
        )


def move_watermark(
    svc: Services,
    actor: Actor,
    conversation_id: str,
    kind: Kind,
    *,
    up_to_seq: int | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """Move the caller's read (or delivered) watermark forward and tell who should know."""
    with svc.unit() as unit:
        conv, me = require_member(unit.conn, conversation_id, actor.user_id)
        seq = _resolve_seq(unit.conn, conv, up_to_seq, message_id)
        before = me.last_read_seq if kind == "read" else max(me.last_delivered_seq, me.last_read_seq)
        column = "last_read_seq" if kind == "read" else "last_delivered_seq"
        moved = conv_store.advance_watermark(unit.conn, conv.id, actor.user_id, column, seq, unit.now)
        if kind == "read":
            conv_store.advance_watermark(unit.conn, conv.id, actor.user_id, "last_delivered_seq", seq, unit.now)
        if moved and seq > before:
            _announce_receipts(unit, conv, me, kind, before, seq)
            if kind == "read":
                topics = (
                    (topic_conversation(conv.id), topic_user(actor.user_id))
                    if me.show_read_receipts
                    else (topic_user(actor.user_id),)
                )
                unit.record(
                    Event(
                        "conversation_read",
                        {
                            "conversation_id": conv.id,
                            "user_id": actor.user_id,
                            "up_to_seq": seq,
                            "device_id": actor.device_id,
                        },
                        topics,
                        conversation_id=conv.id,
                    )
                )
        current = max(seq, before) if moved else (me.last_read_seq if kind == "read" else before)
        return {"conversation_id": conv.id, "user_id": actor.user_id, f"last_{kind}_seq": current}


def message_status(svc: Services, actor: Actor, message_id: str) -> dict[str, Any]:
    with svc.db.transaction() as conn:
        message, conv, _ = require_message(conn, message_id, actor.user_id)
        if message.sender_id != actor.user_id:
            raise Forbidden("only the sender sees a message's status", code="not_sender")
        others = [m for m in conv_store.list_members(conn, conv.id) if m.user_id != actor.user_id]
    recipients = [{"user_id": m.user_id, "status": rules.message_status(message.seq, [m])} for m in others]
    return {
        "message_id": message.id,
        "conversation_id": conv.id,
        "seq": message.seq,
        "status": rules.message_status(message.seq, others),
        "recipients": recipients,
    }
