"""Queries on reactions: one row per (message, user, emoji)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, delete, insert, select

from shared.domain.models import Reaction
from shared.storage.schema import reactions

_FIELDS = list(Reaction.__dataclass_fields__)


def _reaction(row: Row[Any]) -> Reaction:
    m = row._mapping
    return Reaction(**{name: m[name] for name in _FIELDS})


def list_for_message(conn: Connection, message_id: str) -> list[Reaction]:
    """The message's reactions, oldest first."""
    rows = conn.execute(
        select(reactions).where(reactions.c.message_id == message_id).order_by(reactions.c.created_at, reactions.c.id)
    )
    return [_reaction(r) for r in rows]


def find(conn: Connection, message_id: str, user_id: str, reaction: str) -> Reaction | None:
    row = conn.execute(
        select(reactions).where(
            reactions.c.message_id == message_id,
            reactions.c.user_id == user_id,
            reactions.c.reaction == reaction,
        )
    ).first()
    return _reaction(row) if row else None


def emojis_of_user(conn: Connection, message_id: str, user_id: str) -> list[str]:
    rows = conn.execute(
        select(reactions.c.reaction).where(reactions.c.message_id == message_id, reactions.c.user_id == user_id)
    )
    return [str(r) for r in rows.scalars()]


def distinct_emojis(conn: Connection, message_id: str) -> list[str]:
    rows = conn.execute(select(reactions.c.reaction).where(reactions.c.message_id == message_id).distinct())
    return [str(r) for r in rows.scalars()]


def insert_reaction(conn: Connection, reaction: Reaction) -> None:
    conn.execute(insert(reactions).values(**{name: getattr(reaction, name) for name in _FIELDS}))


def delete_reaction(conn: Connection, message_id: str, user_id: str, reaction: str) -> bool:
    """True if the user had that reaction on the message."""
    result = conn.execute(
        delete(reactions).where(
            reactions.c.message_id == message_id,
            reactions.c.user_id == user_id,
            reactions.c.reaction == reaction,
        )
    )
    return bool(result.rowcount)
