"""Storage for the sibling integration: consumed events (idempotency), the notification
dispatcher's cursor over the outbox, and its queue of calls owed to the notification service."""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Text,
    and_,
    bindparam,
    delete,
    func,
    insert,
    literal,
    literal_column,
    select,
    tuple_,
    type_coerce,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError

from shared.storage.schema import conversations, events, inbound_events, members, notification_queue, outbox_cursors
from shared.storage.sql import Prebuilt, any_of
from shared.storage.sync import Cursor, head
from shared.storage.types import UTCDateTime

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


class OutboxEvent(NamedTuple):
    """A notifiable event as the planner reads it (a tuple: a pass makes hundreds)."""

    position: int
    event_id: str
    name: str
    conversation_id: str | None
    seq: int | None
    payload: dict[str, Any]


_CLAIM_CURSOR = Prebuilt(
    lambda postgres: select(outbox_cursors.c.txid, outbox_cursors.c.event_id)
    .where(outbox_cursors.c.name == bindparam("name"))
    .with_for_update(skip_locked=True)
)
_MOVE_CURSOR = Prebuilt(
    lambda postgres: update(outbox_cursors)
    .where(outbox_cursors.c.name == bindparam("cursor"))
    .values(txid=bindparam("to_txid", type_=BigInteger), event_id=bindparam("to_event_id", type_=BigInteger))
)


def claim_cursor(conn: Connection, name: str) -> Cursor | None:
    """The consumer's cursor, locked for this transaction (None: another instance holds it).
    A consumer seen for the first time starts at the head: nothing older is owed (the migration
    that made the table started `notifications` at the events stored until then)."""
    row = conn.execute(_CLAIM_CURSOR(conn), {"name": name}).first()
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
    conn.execute(_MOVE_CURSOR(conn), {"cursor": name, "to_txid": cursor[0], "to_event_id": cursor[1]})


def _horizon(postgres: bool) -> ColumnElement[int]:
    """`shared.storage.sync.horizon` inside the statement that reads the events (one round trip
    fewer): every event with txid below it has committed, in that statement's own snapshot."""
    if postgres:
        return literal_column("(SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint)", BigInteger)
    return literal(1, BigInteger)


def _after(name: str) -> ColumnElement[int]:
    return bindparam(name, type_=BigInteger)


_NOTIFIABLE_AFTER = Prebuilt(
    lambda postgres: select(
        events.c.id,
        events.c.txid,
        events.c.event_id,
        events.c.name,
        events.c.conversation_id,
        events.c.seq,
        events.c.payload,
    )
    .where(
        # names as literals, so that even a generic plan of the prepared statement can use the
        # partial index `ix_events_notifiable` (its predicate is these names)
        events.c.name.in_([literal_column(f"'{name}'") for name in NOTIFIABLE]),
        tuple_(events.c.txid, events.c.id) > tuple_(_after("txid"), _after("id")),
        events.c.txid < _horizon(postgres),
    )
    .order_by(events.c.txid, events.c.id)
    .limit(bindparam("limit"))
)


def notifiable_after(conn: Connection, after: Cursor, limit: int) -> tuple[list[OutboxEvent], Cursor]:
    """Committed `new_message` / `conversation_read` events past `after`, in (txid, id) order,
    and the cursor past them (or `after` if there were none). Only the columns the planner
    uses (not `topics`, a JSON value of its own per event, nor `created_at`: a message carries
    its `sent_at`)."""
    rows = conn.execute(_NOTIFIABLE_AFTER(conn), {"txid": after[0], "id": after[1], "limit": limit}).all()
    found = [OutboxEvent(i, e, n, c, s, p) for i, _, e, n, c, s, p in rows]
    return found, ((int(rows[-1].txid), int(rows[-1].id)) if rows else after)


@dataclass(frozen=True)
class Audience:
    """Who of a conversation may be pushed a message (before presence and the sender are taken
    out): its active members with notifications on and not muted; and whether it is E2E."""

    encrypted: bool
    user_ids: tuple[str, ...]


_AUDIENCES = Prebuilt(
    lambda postgres: select(
        conversations.c.id,
        type_coerce(conversations.c.metadata, Text).label("conversation_metadata"),  # decoded once each
        members.c.user_id,
    )
    .select_from(
        conversations.outerjoin(
            members,
            and_(
                members.c.conversation_id == conversations.c.id,
                members.c.is_active.is_(True),
                members.c.notifications_enabled.is_(True),
                members.c.muted_until.is_(None) | (members.c.muted_until <= bindparam("now", type_=UTCDateTime)),
            ),
        )
    )
    .where(any_of(postgres, conversations.c.id, "ids"))
    .order_by(members.c.joined_at, members.c.user_id)  # recipients in the order members joined
)


def audiences(conn: Connection, conversation_ids: Collection[str], now: datetime) -> dict[str, Audience]:
    """`Audience` of each of these conversations that exists, in one query (members and the
    conversation's E2E flag together, only the columns that decide)."""
    if not conversation_ids:
        return {}
    found: dict[str, tuple[bool, list[str]]] = {}
    for row in conn.execute(_AUDIENCES(conn), {"ids": list(conversation_ids), "now": now}):
        entry = found.get(row.id)
        if entry is None:
            metadata = orjson.loads(row.conversation_metadata)
            e2ee = metadata.get("e2ee") if isinstance(metadata, dict) else None
            entry = found[row.id] = (isinstance(e2ee, dict) and e2ee.get("enabled") is True, [])
        if row.user_id is not None:
            entry[1].append(row.user_id)
    return {cid: Audience(encrypted, tuple(user_ids)) for cid, (encrypted, user_ids) in found.items()}


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


def enqueue_many(conn: Connection, calls: Sequence[tuple[str, str, dict[str, Any]]], now: datetime) -> None:
    """Queue calls `(dedupe_key, kind, payload)` in one INSERT; those whose `dedupe_key` is
    queued already are left out (ON CONFLICT DO NOTHING, on both backends)."""
    if not calls:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    statement = dialect.insert(notification_queue).on_conflict_do_nothing(index_elements=["dedupe_key"])
    conn.execute(
        statement,
        [
            {"dedupe_key": key, "kind": kind, "payload": payload, "created_at": now, "attempts": 0}
            for key, kind, payload in calls
        ],
    )


_CLAIM_OWED = Prebuilt(
    lambda postgres: select(
        notification_queue.c.id, notification_queue.c.kind, notification_queue.c.payload, notification_queue.c.attempts
    )
    .order_by(notification_queue.c.id)
    .limit(bindparam("limit"))
    .with_for_update(skip_locked=True)
)
_DONE = Prebuilt(lambda postgres: delete(notification_queue).where(any_of(postgres, notification_queue.c.id, "ids")))
_FAILED = Prebuilt(
    lambda postgres: update(notification_queue)
    .where(any_of(postgres, notification_queue.c.id, "ids"))
    .values(attempts=notification_queue.c.attempts + 1)
)


def claim_owed(conn: Connection, limit: int) -> list[Owed]:
    """The oldest calls owed, locked for this transaction (other instances take others)."""
    return [Owed(*row) for row in conn.execute(_CLAIM_OWED(conn), {"limit": limit})]


def done(conn: Connection, ids: Sequence[int]) -> None:
    if ids:
        conn.execute(_DONE(conn), {"ids": list(ids)})


def failed(conn: Connection, ids: Sequence[int]) -> None:
    if ids:
        conn.execute(_FAILED(conn), {"ids": list(ids)})


def queued(conn: Connection) -> int:
    return int(conn.execute(select(func.count()).select_from(notification_queue)).scalar_one())
