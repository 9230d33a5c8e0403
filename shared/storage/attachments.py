"""Queries on attachments: media-service objects linked to messages."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, func, insert, select

from shared.domain.models import Attachment
from shared.storage.schema import attachments

_FIELDS = list(Attachment.__dataclass_fields__)


def _attachment(row: Row[Any]) -> Attachment:
    m = row._mapping
    return Attachment(**{name: m[name] for name in _FIELDS})


def list_for_message(conn: Connection, message_id: str) -> list[Attachment]:
    rows = conn.execute(
        select(attachments)
        .where(attachments.c.message_id == message_id)
        .order_by(attachments.c.created_at, attachments.c.id)
    )
    return [_attachment(r) for r in rows]


def find(conn: Connection, message_id: str, media_id: str) -> Attachment | None:
    row = conn.execute(
        select(attachments).where(attachments.c.message_id == message_id, attachments.c.media_id == media_id)
    ).first()
    return _attachment(row) if row else None


def count_for_message(conn: Connection, message_id: str) -> int:
    return int(
        conn.execute(
            select(func.count()).select_from(attachments).where(attachments.c.message_id == message_id)
        ).scalar_one()
    )


def insert_attachment(conn: Connection, attachment: Attachment) -> None:
    conn.execute(insert(attachments).values(**{name: getattr(attachment, name) for name in _FIELDS}))
