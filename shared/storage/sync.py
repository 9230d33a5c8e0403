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

from sqlalchemy import (
    ColumnElement,
    Connection,
    Select,
    and_,
    func,
    literal,
    literal_column,
    select,
    true,
    tuple_,
    union,
)

from shared.storage.schema import event_targets, events, hidden_messages, members

Cursor = tuple[int, int]  # (txid, event id)

# The predicate of the partial index `(conversation_id, txid, id)` (migration 0008), as a literal
# in the statement: a bound parameter would hide it from PostgreSQL's generic plans and from
# SQLite's planner, and neither could use the index.
CONVERSATION_SCOPED = events.c.scope == literal_column("'conversation'")


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


def changes_query(postgres: bool, user_id: str, after: Cursor, below: int, limit: int) -> Select[Any]:
    """The user's next `limit` events past `after` and below the horizon, in (txid, id) order.

    Read as two kinds of index range, so the cost follows the user's conversations and the page,
    not the size of the outbox: each active conversation's events past the cursor (the
    `(conversation_id, txid, id)` index; on PostgreSQL a LATERAL scan of at most `limit` per
    conversation) and the events targeted at the user (`(user_id, txid, event_id)`). Their union
    (an event can be both) is sorted and cut, then the page's rows are read by primary key. A
    single scan with "in my conversations OR targeted at me" reads the whole outbox instead.
    """

    def past(txid: ColumnElement[int], event_id: ColumnElement[int]) -> ColumnElement[bool]:
        return and_(tuple_(txid, event_id) > tuple_(literal(after[0]), literal(after[1])), txid < below)

    mine = select(members.c.conversation_id).where(members.c.user_id == user_id, members.c.is_active.is_(True))
    in_conversation = select(events.c.txid, events.c.id).where(CONVERSATION_SCOPED, past(events.c.txid, events.c.id))
    conversations: Select[Any]
    if postgres:
        joined = mine.subquery("mine")
        each = (
            in_conversation.where(events.c.conversation_id == joined.c.conversation_id)
            .order_by(events.c.txid, events.c.id)
            .limit(limit)
            .lateral("each")
        )
        conversations = select(each.c.txid, each.c.id).select_from(joined.join(each, true()))
    else:  # SQLite: no LATERAL; its IN over the same index reads the same ranges
        conversations = in_conversation.where(events.c.conversation_id.in_(mine))
    targeted = (
        select(event_targets.c.txid, event_targets.c.event_id.label("id"))
        .where(event_targets.c.user_id == user_id, past(event_targets.c.txid, event_targets.c.event_id))
        .order_by(event_targets.c.txid, event_targets.c.event_id)
        .limit(limit)
        .subquery("targeted")
    )
    both = union(conversations, select(targeted.c.txid, targeted.c.id)).subquery("both")
    page = select(both.c.id).order_by(both.c.txid, both.c.id).limit(limit).subquery("page")
    return select(events).join(page, events.c.id == page.c.id).order_by(events.c.txid, events.c.id)


def changes_for(conn: Connection, user_id: str, after: Cursor, limit: int) -> tuple[list[Change], bool]:
    """Up to `limit` changes for the user after the cursor, and whether more are ready."""
    query = changes_query(conn.dialect.name == "postgresql", user_id, after, horizon(conn), limit + 1)
    rows = conn.execute(query).all()
    changes = [Change((r.txid, r.id), r.name, r.conversation_id, r.seq, r.payload, r.created_at) for r in rows[:limit]]
    return changes, len(rows) > limit


def head(conn: Connection) -> Cursor:
    """The newest cursor below the horizon: where a device that has just read everything starts.

    `(horizon - 1, newest id)` rather than the newest event's own cursor: it covers exactly the
    same events (every event with txid below the horizon has committed, so its id is at most the
    newest id; every event written later gets a txid at or above the horizon) and costs one step
    down the primary key instead of a sort of the outbox or an index on `(txid, id)` that every
    event would pay for.
    """
    below = horizon(conn)
    newest = conn.execute(select(func.max(events.c.id))).scalar_one()
    return (below - 1, int(newest or 0))


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
