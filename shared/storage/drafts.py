"""Queries on drafts: one per (conversation, user)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, Row, delete, select
from sqlalchemy.dialects import postgresql, sqlite

from shared.domain.models import Draft
from shared.storage.schema import drafts

_FIELDS = list(Draft.__dataclass_fields__)


def _draft(row: Row[Any]) -> Draft:
    m = row._mapping
    return Draft(**{name: m[name] for name in _FIELDS})


def get_draft(conn: Connection, conversation_id: str, user_id: str) -> Draft | None:
    row = conn.execute(
        select(drafts).where(drafts.c.conversation_id == conversation_id, drafts.c.user_id == user_id)
    ).first()
    return _draft(row) if row else None


def upsert_draft(conn: Connection, draft: Draft) -> None:
    """Insert or replace, in one statement (two devices saving at once do not collide)."""
    values = {name: getattr(draft, name) for name in _FIELDS}
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(drafts).values(**values)
    conn.execute(
        statement.on_conflict_do_update(
            index_elements=[drafts.c.conversation_id, drafts.c.user_id],
            set_={"content": draft.content, "metadata": draft.metadata, "updated_at": draft.updated_at},
        )
    )


def delete_draft(conn: Connection, conversation_id: str, user_id: str) -> bool:
    result = conn.execute(
        delete(drafts).where(drafts.c.conversation_id == conversation_id, drafts.c.user_id == user_id)
    )
    return bool(result.rowcount)
