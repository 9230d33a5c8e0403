"""Queries for "mark unread": moving a read watermark back, and who that concerns."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, select, update

from shared.storage.schema import device_receipts, members, messages


def rewind_read(conn: Connection, conversation_id: str, user_id: str, seq: int, now: datetime) -> bool:
    """Move the user's read watermark (and their devices') back to `seq`; True if it moved.
    Delivery watermarks stay: the messages were delivered."""
    result = conn.execute(
        update(members)
        .where(
            members.c.conversation_id == conversation_id, members.c.user_id == user_id, members.c.last_read_seq > seq
        )
        .values(last_read_seq=seq, updated_at=now)
    )
    conn.execute(
        update(device_receipts)
        .where(
            device_receipts.c.conversation_id == conversation_id,
            device_receipts.c.user_id == user_id,
            device_receipts.c.read_seq > seq,
        )
        .values(read_seq=seq, updated_at=now)
    )
    return bool(result.rowcount)


def latest_per_sender(
    conn: Connection, conversation_id: str, after_seq: int, upto_seq: int, reader: str
) -> dict[str, tuple[str, int]]:
    """For each sender of messages in (after_seq, upto_seq], other than the reader and the
    service: their newest message id and seq there."""
    rows = conn.execute(
        select(messages.c.sender_id, messages.c.id, messages.c.seq)
        .where(
            messages.c.conversation_id == conversation_id,
            messages.c.seq > after_seq,
            messages.c.seq <= upto_seq,
            messages.c.sender_id != reader,
            messages.c.message_type != "system",
        )
        .order_by(messages.c.seq)
    )
    return {sender: (message_id, seq) for sender, message_id, seq in rows}


def senders_between(conn: Connection, conversation_id: str, after_seq: int, upto_seq: int, reader: str) -> list[str]:
    """Who sent the messages in (after_seq, upto_seq], other than the reader and the service."""
    return sorted(latest_per_sender(conn, conversation_id, after_seq, upto_seq, reader))
