"""Storage for the sibling integration: consumed events (idempotency), the notification
dispatcher's cursor over the outbox, and its queue of calls owed to the notification service."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, delete, func, insert, literal, select, tuple_, update
from sqlalchemy.exc import IntegrityError

from shared.storage.schema import events, inbound_events, notification_queue, outbox_cursors
from shared.storage.sync import Cursor, head, horizon

NOTIFIABLE = ("new_message", "conversation_read")


# --- consumed events ----------------------------------------------------------------------


def inbound_key(source: str, event_id: str) -> str:
    """CloudEvents are unique by (source, id)."""
    return hashlib.sha256(f"{source} {event_id}".encode()).hexdigest()


def first_delivery(conn: Connection, source: str, event_id: str, kind: str, now: datetime) -> bool:
    """Remember the event; False if it was already (its first delivery committed, or is
    committing now: the unique key waits for it)."""
    try:
        with conn.begin_nested():
            conn.execute(
                insert(inbound_events).values(key=inbound_key(source, event_id), type=kind[:128], received_at=now)
            )
    except IntegrityError:
        return False
    return True


def forget_inbound_before(conn: Connection, before: datetime) -> int:
    """Drop what is older than any redelivery (Pub/Sub keeps a message at most 7 days)."""
    return conn.execute(delete(inbound_events).where(inbound_events.c.received_at < before)).rowcount or 0


# --- the dispatcher's cursor ----------------------------------------------------------------


@dataclass(frozen=True)
class OutboxEvent:
    position: int
    event_id: str
    name: str
    conversation_id: str | None
    seq: int | None
    payload: dict[str, Any]
    created_at: datetime


def claim_cursor(conn: Connection, name: str) -> Cursor | None:
    """The consumer's cursor, locked for this transaction (None: another instance holds it).
    A consumer seen for the first time starts at the head: nothing older is owed (the migration
    that made the table started `notifications` at the events stored until then)."""
    query = select(outbox_cursors.c.txid, outbox_cursors.c.event_id).where(outbox_cursors.c.name == name)
    row = conn.execute(query.with_for_update(skip_locked=True)).first()
    if row is not None:
        return (int(row.txid), int(row.event_id))
    start = head(conn)
    try:
        with conn.begin_nested():
            conn.execute(insert(outbox_cursors).values(name=name, txid=start[0], event_id=start[1]))
    except IntegrityError:
        return None  # another instance made it meanwhile
    return start


def move_cursor(conn: Connection, name: str, cursor: Cursor) -> None:
    conn.execute(update(outbox_cursors).where(outbox_cursors.c.name == name).values(txid=cursor[0], event_id=cursor[1]))


def notifiable_after(conn: Connection, after: Cursor, limit: int) -> tuple[list[OutboxEvent], Cursor]:
    """Committed `new_message` / `conversation_read` events past `after`, in (txid, id) order,
    and the cursor past them (or `after` if there were none)."""
    rows = conn.execute(
        select(events)
        .where(
            events.c.name.in_(NOTIFIABLE),
            tuple_(events.c.txid, events.c.id) > tuple_(literal(after[0]), literal(after[1])),
            events.c.txid < horizon(conn),
        )
        .order_by(events.c.txid, events.c.id)
        .limit(limit)
    ).all()
    found = [OutboxEvent(r.id, r.event_id, r.name, r.conversation_id, r.seq, r.payload, r.created_at) for r in rows]
    return found, ((int(rows[-1].txid), int(rows[-1].id)) if rows else after)


# --- the queue ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Owed:
    id: int
    kind: str
    payload: dict[str, Any]
    attempts: int


def enqueue(conn: Connection, dedupe_key: str, kind: str, payload: dict[str, Any], now: datetime) -> None:
    """Queue one call; nothing if `dedupe_key` is queued already."""
    try:
        with conn.begin_nested():
            conn.execute(
                insert(notification_queue).values(
                    dedupe_key=dedupe_key, kind=kind, payload=payload, created_at=now, attempts=0
                )
            )
    except IntegrityError:
        pass


def claim_owed(conn: Connection, limit: int) -> list[Owed]:
    """The oldest calls owed, locked for this transaction (other instances take others)."""
    rows = conn.execute(
        select(notification_queue).order_by(notification_queue.c.id).limit(limit).with_for_update(skip_locked=True)
    )
    return [Owed(r.id, r.kind, r.payload, r.attempts) for r in rows]


def done(conn: Connection, ids: Sequence[int]) -> None:
    if ids:
        conn.execute(delete(notification_queue).where(notification_queue.c.id.in_(list(ids))))


def failed(conn: Connection, ids: Sequence[int]) -> None:
    if ids:
        conn.execute(
            update(notification_queue)
            .where(notification_queue.c.id.in_(list(ids)))
            .values(attempts=notification_queue.c.attempts + 1)
        )


def queued(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(notification_queue)).scalar_one())
