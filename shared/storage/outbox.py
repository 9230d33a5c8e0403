"""The transactional outbox: events written with the change, published after commit.

An event written by an instance whose bus is not in its process (Pub/Sub, the local broker of
`dev --workers N`) also gets a row in `unpublished_events`, in the same statement; publishing it
deletes that row (`mark_published`), and the sweeper republishes the events whose row stays.
Where the bus is in the process (`hands_over_in_process`) events are written already published:
no row at all."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Connection, delete, insert, literal_column, select, update

from shared.domain.ids import new_uuid, random_uuids
from shared.domain.models import Event
from shared.ports.bus import PublishedEvent
from shared.storage.schema import event_targets, events, unpublished_events
from shared.storage.sql import Prebuilt, any_of, driver_connection, next_ids, send_sql
from shared.storage.types import dump_json


def _writer_txid(conn: Connection) -> Any:
    return _txid(conn.dialect.name == "postgresql")


def _txid(postgres: bool) -> Any:
    """The writing transaction's id, as the SQL that reads it where the row is written (no round
    trip of its own): PostgreSQL's `pg_current_xact_id()`, 0 on SQLite (whose writers are serial)."""
    return literal_column("pg_current_xact_id()::text::bigint", BigInteger) if postgres else 0


def _row(event: Event, event_id: str, now: datetime) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "name": event.name,
        "conversation_id": event.conversation_id,
        "seq": event.seq,
        "topics": list(event.topics),
        "payload": event.payload,
        "scope": "conversation" if event.is_conversation_wide else "user",
        "created_at": now,
    }


def _published(event: Event, event_id: str, row_id: int, now: datetime) -> PublishedEvent:
    return PublishedEvent(
        position=int(row_id),
        event_id=event_id,
        name=event.name,
        topics=event.topics,
        payload=event.payload,
        conversation_id=event.conversation_id,
        seq=event.seq,
        created_at=now,
    )


def append(conn: Connection, event: Event, now: datetime, *, published: bool = False) -> PublishedEvent:
    """Write an event to the outbox; `published`: already marked (`shared.ports.bus.hands_over_in_process`)."""
    event_id = new_uuid()
    # a statement built once, its values bound: `insert(...).values(**row)` made anew costs
    # SQLAlchemy a cache key over every value each time (~5x the prebuilt statement's execute)
    row_id = conn.execute(_INSERT_EVENT_RETURNING_ID(conn), _row(event, event_id, now)).scalar_one()
    targets = event.targets()
    if targets:
        conn.execute(_INSERT_TARGET(conn), [{"user_id": u, "event_id": row_id} for u in targets])
    if not published:
        conn.execute(_INSERT_UNPUBLISHED(conn), [{"event_id": row_id, "created_at": now}])
    return _published(event, event_id, row_id, now)


_INSERT_EVENT = Prebuilt(lambda postgres: insert(events).values(txid=_txid(postgres)))
_INSERT_EVENT_RETURNING_ID = Prebuilt(
    lambda postgres: insert(events).values(txid=_txid(postgres)).returning(events.c.id)
)
_INSERT_TARGET = Prebuilt(lambda postgres: insert(event_targets).values(txid=_txid(postgres)))
_INSERT_UNPUBLISHED = Prebuilt(lambda postgres: insert(unpublished_events))


def append_many_later(
    conn: Connection, recorded: Sequence[Event], now: datetime, *, published: bool = False
) -> Callable[[], list[PublishedEvent]]:
    """`append` for many events at once, sent now (in the caller's pipeline, if any): one INSERT
    for the events (ids in the given order), one for all their targets (on psycopg, one statement
    for both: `_INSERT_EVENTS_SQL`). The events as published are read when the returned function
    is called (after the pipeline's round trip)."""
    if driver_connection(conn) is not None and recorded:
        return _append_many_direct(conn, list(recorded), now, published)
    if len(recorded) <= 1:
        done = [append(conn, event, now, published=published) for event in recorded]
        return lambda: done
    event_ids = random_uuids(len(recorded))
    txid = _writer_txid(conn)
    rows = [_row(event, event_id, now) for event, event_id in zip(recorded, event_ids, strict=True)]
    drawn = next_ids(conn, events, len(rows))
    ids: Sequence[int]
    if drawn is None:  # no sequence to draw from (SQLite): one multi-row INSERT ... RETURNING
        ids = (
            conn.execute(insert(events).values(txid=txid).returning(events.c.id, sort_by_parameter_order=True), rows)
            .scalars()
            .all()
        )
    else:  # ids drawn up front: an executemany, one round trip in psycopg's pipeline
        ids = drawn
        conn.execute(_INSERT_EVENT(conn), [{**r, "id": i} for r, i in zip(rows, ids, strict=True)])
    targets = [
        {"user_id": user_id, "event_id": row_id}
        for event, row_id in zip(recorded, ids, strict=True)
        for user_id in event.targets()
    ]
    if targets:
        conn.execute(_INSERT_TARGET(conn), targets)
    if not published:
        conn.execute(_INSERT_UNPUBLISHED(conn), [{"event_id": row_id, "created_at": now} for row_id in ids])
    done = [
        _published(event, event_id, row_id, now)
        for event, event_id, row_id in zip(recorded, event_ids, ids, strict=True)
    ]
    return lambda: done


# The events and their targets in one statement, every column bound as one array for all the
# events (in binary: psycopg's text form of a list costs a regular expression per element): ids
# from the table's sequence in the order given (the ORDER BY is applied before the ids are
# drawn), the targets joined to the new rows by their event_id. One statement for PostgreSQL to
# plan and run, whatever the number of events.
_INSERT_EVENTS_SQL = """\
WITH new AS (
    INSERT INTO events (event_id, name, conversation_id, seq, topics, payload, scope, txid, created_at)
    SELECT e.event_id, e.name, e.conversation_id, e.seq, e.topics, e.payload, e.scope,
        pg_current_xact_id()::text::bigint, %(now)b::timestamptz
    FROM unnest(
        %(event_id)b::varchar[], %(name)b::varchar[], %(conversation_id)b::varchar[], %(seq)b::bigint[],
        %(topics)b::text[], %(payload)b::text[], %(scope)b::varchar[]
    ) WITH ORDINALITY AS e(event_id, name, conversation_id, seq, topics, payload, scope, n)
    ORDER BY e.n
    RETURNING id, event_id, txid
), targeted AS (
    INSERT INTO event_targets (user_id, event_id, txid)
    SELECT t.user_id, new.id, new.txid
    FROM unnest(%(target_user)b::varchar[], %(target_event)b::varchar[]) AS t(user_id, event_id)
    JOIN new ON new.event_id = t.event_id
), waiting AS (
    INSERT INTO unpublished_events (event_id, created_at)
    SELECT new.id, %(now)b::timestamptz FROM new WHERE NOT %(published)b::boolean
)
SELECT event_id, id FROM new"""


def _append_many_direct(
    conn: Connection, recorded: list[Event], now: datetime, published: bool
) -> Callable[[], list[PublishedEvent]]:
    """`append_many_later` on psycopg: each payload and topic list encoded once, as the
    columns' type (`JSONText`) would."""
    event_ids = random_uuids(len(recorded))
    target_user: list[str] = []
    target_event: list[str] = []
    for event, event_id in zip(recorded, event_ids, strict=True):
        for user_id in event.targets():
            target_user.append(user_id)
            target_event.append(event_id)
    pending = send_sql(
        conn,
        _INSERT_EVENTS_SQL,
        {
            "now": now,
            "published": published,
            "event_id": event_ids,
            "name": [e.name for e in recorded],
            "conversation_id": [e.conversation_id for e in recorded],
            "seq": [e.seq for e in recorded],
            "topics": [dump_json(list(e.topics)) for e in recorded],
            "payload": [dump_json(e.payload) for e in recorded],
            "scope": ["conversation" if e.is_conversation_wide else "user" for e in recorded],
            "target_user": target_user,
            "target_event": target_event,
        },
    )

    def read() -> list[PublishedEvent]:
        ids = {event_id: int(row_id) for event_id, row_id in pending.rows()}
        return [
            _published(event, event_id, ids[event_id], now) for event, event_id in zip(recorded, event_ids, strict=True)
        ]

    return read


_MARK_PUBLISHED = Prebuilt(
    lambda postgres: delete(unpublished_events).where(any_of(postgres, unpublished_events.c.event_id, "ids"))
)


def mark_published(conn: Connection, positions: Sequence[int], *, durable: bool = True) -> None:
    """Mark events published (their `unpublished_events` rows go). Not `durable`: on PostgreSQL
    the transaction's commit does not wait for the WAL flush (`synchronous_commit = off` for it
    alone). A mark lost in a crash only means the sweeper publishes the event again, which
    consumers dedupe by event id; a send's own commit is what must wait for the disk, not this."""
    if not positions:
        return
    if not durable and conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL synchronous_commit = off")
    conn.execute(_MARK_PUBLISHED(conn), {"ids": list(positions)})


def unpublished(conn: Connection, older_than: datetime, limit: int = 500) -> list[PublishedEvent]:
    """The oldest events still waiting for the bus, written at `older_than` or before."""
    rows = conn.execute(
        select(events)
        .join(unpublished_events, unpublished_events.c.event_id == events.c.id)
        .where(unpublished_events.c.created_at <= older_than)
        .order_by(unpublished_events.c.event_id)
        .limit(limit)
    )
    return [
        PublishedEvent(
            position=r.id,
            event_id=r.event_id,
            name=r.name,
            topics=tuple(r.topics),
            payload=r.payload,
            conversation_id=r.conversation_id,
            seq=r.seq,
            created_at=r.created_at,
        )
        for r in rows
    ]


MESSAGE_STATE_EVENTS = ("new_message", "message_updated")


def scrub_message(conn: Connection, conversation_id: str, seq: int, view: dict[str, Any]) -> None:
    """Overwrite the copies of a message the change log keeps with its current (purged) view,
    so content deleted for everyone or expired does not live on in /sync."""
    conn.execute(
        update(events)
        .where(
            events.c.conversation_id == conversation_id,
            events.c.seq == seq,
            events.c.name.in_(MESSAGE_STATE_EVENTS),
        )
        .values(payload={"message": view})
    )


def oldest_unpublished(conn: Connection) -> datetime | None:
    """When the oldest event still waiting to be published was recorded (None: none waits)."""
    row = conn.execute(select(unpublished_events.c.created_at).order_by(unpublished_events.c.event_id).limit(1)).first()
    return row.created_at if row is not None else None
