"""Queries on pinned messages (at most one pin per message)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, delete, func, insert, or_, select

from shared.domain.models import Message, MessagePin
from shared.storage.messages import MESSAGE_COLUMNS, _message, _visible_to
from shared.storage.schema import message_pins, messages

_FIELDS = list(MessagePin.__dataclass_fields__)


def _pin(row: Row[Any]) -> MessagePin:
    m = row._mapping
    return MessagePin(**{name: m[name] for name in _FIELDS})


def get_pin(conn: Connection, message_id: str) -> MessagePin | None:
    row = conn.execute(select(message_pins).where(message_pins.c.message_id == message_id)).first()
    return _pin(row) if row else None


def count_live(conn: Connection, conversation_id: str, now: datetime) -> int:
    """Pins of the conversation that still count: their message is neither deleted nor expired."""
    return int(
        conn.execute(
            select(func.count())
            .select_from(message_pins.join(messages, messages.c.id == message_pins.c.message_id))
            .where(
                message_pins.c.conversation_id == conversation_id,
                messages.c.is_deleted.is_(False),
                messages.c.is_expired.is_(False),
                or_(messages.c.expires_at.is_(None), messages.c.expires_at > now),
            )
        ).scalar_one()
    )


def insert_pin(conn: Connection, pin: MessagePin) -> None:
    conn.execute(insert(message_pins).values(**{name: getattr(pin, name) for name in _FIELDS}))


def delete_pin(conn: Connection, message_id: str) -> bool:
    return bool(conn.execute(delete(message_pins).where(message_pins.c.message_id == message_id)).rowcount)


def list_pins(conn: Connection, conversation_id: str, user_id: str, now: datetime) -> list[tuple[MessagePin, Message]]:
    """The conversation's pins whose message the user can see (not deleted), newest pin first."""
    pin_columns = [message_pins.c[name].label(f"pin_{name}") for name in _FIELDS]
    rows = conn.execute(
        select(*MESSAGE_COLUMNS, *pin_columns)
        .join(message_pins, message_pins.c.message_id == messages.c.id)
        .where(
            message_pins.c.conversation_id == conversation_id,
            messages.c.is_deleted.is_(False),
            _visible_to(user_id, now),
        )
        .order_by(message_pins.c.pinned_at.desc(), messages.c.seq.desc())
    )
    out = []
    for row in rows:
        m = row._mapping
        pin = MessagePin(**{name: m[f"pin_{name}"] for name in _FIELDS})
        out.append((pin, _message(row)))
    return out
