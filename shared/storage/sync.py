"""The change feed behind /sync: outbox events a user hears, in (txid, id) order.

Ordering by the writer's transaction id and stopping below the oldest transaction still
running (PostgreSQL's snapshot xmin) means a cursor never passes a change that commits later:
every event with txid below the horizon has already committed. SQLite has one writer at a
time, so there txid is 0 and ids are in commit order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, literal, or_, select, tuple_

from shared.storage.schema import event_targets, events, hidden_messages, members

Cursor = tuple[int, int]  # (txid, event id)


@dataclass(frozen=True)
class Change:
    cursor: Cursor
    name: str
    conversation_id: str | None
    seq: int | None
    payload: dict[str, Any]
    created_at: datetime


def horizon(conn: Connection) -> int:
    """Every event with txid below this has committed (or never will)."""
    if conn.dialect.name != "postgresql":
        return 1
    return int(conn.exec_driver_sql("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint").scalar_one())


def changes_for(conn: Connection, user_id: str, after: Cursor, limit: int) -> tuple[list[Change], bool]:
    """Up to `limit` changes for the user after the cursor, and whether more are ready."""
    below = horizon(conn)
    mine = select(members.c.conversation_id).where(members.c.user_id == user_id, members.c.is_active.is_(True))
    targeted = select(event_targets.c.event_id).where(
        event_targets.c.user_id == user_id,
        tuple_(event_targets.c.txid, event_targets.c.event_id) > tuple_(literal(after[0]), literal(after[1])),
        event_targets.c.txid < below,
    )
    query = (
        select(events)
        .where(
            tuple_(events.c.txid, events.c.id) > tuple_(literal(after[0]), literal(after[1])),
            events.c.txid < below,
            or_(
                and_(events.c.scope == "conversation", events.c.conversation_id.in_(mine)),
                events.c.id.in_(targeted),
            ),
        )
        .order_by(events.c.txid, events.c.id)
        .limit(limit + 1)
    )
    rows = conn.execute(query).all()
    changes = [Change((r.txid, r.id), r.name, r.conversation_id, r.seq, r.payload, r.created_at) for r in rows[:limit]]
    return changes, len(rows) > limit


def head(conn: Connection) -> Cursor:
    """The newest cursor below the horizon: where a device that has just read everything starts."""
    below = horizon(conn)
    row = conn.execute(
        select(events.c.txid, events.c.id)
        .where(events.c.txid < below)
        .order_by(events.c.txid.desc(), events.c.id.desc())
        .limit(1)
    ).first()
    return (int(row.txid), int(row.id)) if row else (0, 0)


MESSAGE_STATE_EVENTS = ("new_message", "message_updated")


def drop_hidden(conn: Connection, user_id: str, changes: list[Change]) -> list[Change]:
    """A message the user deleted for themselves stays gone: later edits of it are not replayed."""
    ids = {c.payload["message"]["id"] for c in changes if c.name in MESSAGE_STATE_EVENTS}
    if not ids:
        return changes
    hidden = set(
        conn.execute(
            select(hidden_messages.c.message_id).where(
                hidden_messages.c.user_id == user_id, hidden_messages.c.message_id.in_(ids)
            )
        ).scalars()
    )
    return [c for c in changes if not (c.name in MESSAGE_STATE_EVENTS and c.payload["message"]["id"] in hidden)]
