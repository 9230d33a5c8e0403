"""Reading the transactional outbox (`events`) in tests: what a use case recorded."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from shared.storage.schema import events
from tests.support import RunningServer


def recorded(server: RunningServer, name: str, conversation_id: str) -> list[dict[str, Any]]:
    """The events called `name` recorded for a conversation, oldest first."""
    with server.services.db.transaction() as conn:
        rows = conn.execute(
            select(events.c.name, events.c.topics, events.c.payload, events.c.seq, events.c.conversation_id)
            .where(events.c.name == name, events.c.conversation_id == conversation_id)
            .order_by(events.c.id)
        )
        return [dict(r._mapping) for r in rows]
