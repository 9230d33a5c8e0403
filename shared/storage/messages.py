"""Queries on messages, per-user hidden messages and sender keys."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import (
    ColumnElement,
    Connection,
    Row,
    Select,
    Text,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from shared.domain.models import Message
from shared.storage.schema import hidden_messages, messages, sender_keys
from shared.storage.sql import Pending, Prebuilt, any_of, driver_connection, send_sql
from shared.storage.types import UTCDateTime

_FIELDS = [f for f in Message.__dataclass_fields__]
# what reads select: the message, not its search columns (a tsvector can be bigger than the text)
MESSAGE_COLUMNS = [messages.c[name] for name in _FIELDS]


def _message(row: Row[Any] | Mapping[str, Any]) -> Message:
    m = row._mapping if isinstance(row, Row) else row
    return Message(**{name: m[name] for name in _FIELDS})


def search_document(postgres: bool) -> ColumnElement[Any]:
    """The value of `messages.search_document` for the words bound as `search_text` (separated
    by spaces, `shared.storage.search.document_words`; None: nothing to find): on PostgreSQL the
    tsvector of exactly those words; SQLite keeps the text, which the migrations' triggers index."""
    if not postgres:
        return bindparam("search_text")
    return func.array_to_tsvector(func.string_to_array(bindparam("search_text", type_=Text), " "))


_INSERT_MESSAGE = Prebuilt(lambda postgres: insert(messages).values(search_document=search_document(postgres)))


def insert_messages(conn: Connection, stored: Sequence[tuple[Message, Mapping[str, Any]]]) -> None:
    """Store messages, each with its search values (`search_text`, `search_tokens`:
    `shared.storage.search.search_values`), in one statement: on psycopg one INSERT of the
    columns as arrays (`_INSERT_MESSAGES_SQL`: one statement for PostgreSQL to plan and run
    whatever their number, sent in the caller's pipeline if any), elsewhere an executemany."""
    if not stored:
        return
    if driver_connection(conn) is not None:
        _insert_messages_direct(conn, stored)
        return
    rows = [{**{name: getattr(m, name) for name in _FIELDS}, "is_expired": False, **s} for m, s in stored]
    conn.execute(_INSERT_MESSAGE(conn), rows)


# The columns a message is stored with, each bound as one array for the whole batch. Blind
# tokens are lists of different lengths (no two-dimensional array holds them): each message's
# list travels as JSON text and becomes its array in PostgreSQL. Every array is bound in binary
# (`%(name)b`): psycopg dumps a list in text with a regular expression per element, ten times
# slower.
_ARRAY_COLUMNS = (
    ("id", "varchar[]"),
    ("conversation_id", "varchar[]"),
    ("seq", "bigint[]"),
    ("sender_id", "varchar[]"),
    ("sender_device_id", "varchar[]"),
    ("client_random", "bigint[]"),
    ("message_type", "varchar[]"),
    ("content", "bytea[]"),
    ("metadata", "text[]"),
    ("reply_to_id", "varchar[]"),
    ("forwarded_from_id", "varchar[]"),
    ("signature", "text[]"),
    ("sender_public_key", "text[]"),
    ("sent_at", "timestamptz[]"),
    ("edited_at", "timestamptz[]"),
    ("is_deleted", "boolean[]"),
    ("deleted_at", "timestamptz[]"),
    ("expires_at", "timestamptz[]"),
    ("search_text", "text[]"),
    ("search_tokens", "text[]"),
)
_STORED = [name for name, _ in _ARRAY_COLUMNS if not name.startswith("search_")]
_INSERT_MESSAGES_SQL = (
    f"INSERT INTO messages ({', '.join(_STORED)}, is_expired, search_document, search_tokens) "
    f"SELECT {', '.join('m.' + name for name in _STORED)}, false, "
    "array_to_tsvector(string_to_array(m.search_text, ' ')), "
    "(SELECT array_agg(t.token ORDER BY t.n) FROM jsonb_array_elements_text(m.search_tokens::jsonb)"
    " WITH ORDINALITY AS t(token, n)) "
    f"FROM unnest({', '.join(f'%({name})b::{array}' for name, array in _ARRAY_COLUMNS)}) "
    f"AS m({', '.join(name for name, _ in _ARRAY_COLUMNS)})"
)


def _insert_messages_direct(conn: Connection, stored: Sequence[tuple[Message, Mapping[str, Any]]]) -> Pending:
    """`insert_messages` on psycopg: values converted as the columns' types do (content as
    UTF-8 bytes, metadata as JSON text)."""
    messages_ = [m for m, _ in stored]
    params: dict[str, Any] = {name: [getattr(m, name) for m in messages_] for name in _STORED}
    params["content"] = [m.content.encode("utf-8") for m in messages_]
    params["metadata"] = [orjson.dumps(m.metadata).decode() for m in messages_]
    params["search_text"] = [s["search_text"] for _, s in stored]
    params["search_tokens"] = [
        None if s["search_tokens"] is None else orjson.dumps(s["search_tokens"]).decode() for _, s in stored
    ]
    return send_sql(conn, _INSERT_MESSAGES_SQL, params)


_BY_IDS = Prebuilt(lambda postgres: select(*MESSAGE_COLUMNS).where(any_of(postgres, messages.c.id, "ids")))


def get_messages(conn: Connection, message_ids: Collection[str]) -> dict[str, Message]:
    """The messages with these ids that exist, by id, in one query."""
    return get_messages_later(conn, message_ids)()


def get_messages_later(conn: Connection, message_ids: Collection[str]) -> Callable[[], dict[str, Message]]:
    """`get_messages`, sent now, read when the returned function is called."""
    if not message_ids:
        return dict
    pending = _BY_IDS.send(conn, {"ids": list(message_ids)})
    return lambda: {row["id"]: _message(row) for row in pending.rows()}


def get_message(conn: Connection, message_id: str) -> Message | None:
    row = conn.execute(select(*MESSAGE_COLUMNS).where(messages.c.id == message_id)).first()
    return _message(row) if row else None


def _by_client_randoms(postgres: bool) -> Select[Any]:
    """The messages matching any of the keys given as three parallel lists. PostgreSQL looks each
    key (`unnest`) up in the `(conversation_id, sender_id, client_random)` index: one exact lookup
    per key, forced by the LATERAL (a plain join let the planner hash the keys against a
    sequential scan of `messages` while the table is small, as in the bench: 0.7 ms a batch at
    4,000 messages, growing with every message until the index won on cost). (Three `= ANY`
    conditions would read every message of the batch's conversations in the window, more with
    every message sent, or probe the index once per combination of the three lists.)
    SQLite gets the three IN lists and keeps the exact keys afterwards."""
    since = messages.c.sent_at >= bindparam("since", type_=UTCDateTime)
    if not postgres:
        return (
            select(*MESSAGE_COLUMNS)
            .where(
                messages.c.conversation_id.in_(bindparam("conversation_ids", expanding=True)),
                messages.c.sender_id.in_(bindparam("sender_ids", expanding=True)),
                messages.c.client_random.in_(bindparam("client_randoms", expanding=True)),
                since,
            )
            .order_by(messages.c.seq)
        )
    keys = (
        func.unnest(
            bindparam("conversation_ids", type_=ARRAY(messages.c.conversation_id.type)),
            bindparam("sender_ids", type_=ARRAY(messages.c.sender_id.type)),
            bindparam("client_randoms", type_=ARRAY(messages.c.client_random.type)),
        )
        .table_valued("conversation_id", "sender_id", "client_random")
        .render_derived(name="k")
    )
    found = (
        select(*MESSAGE_COLUMNS)
        .where(
            messages.c.conversation_id == keys.c.conversation_id,
            messages.c.sender_id == keys.c.sender_id,
            messages.c.client_random == keys.c.client_random,
            since,
        )
        .offset(literal_column("0"))  # not pulled up into a plain join (which may hash): a lookup per key
        .lateral("found")
    )
    return select(*found.c).select_from(keys.join(found, true())).order_by(found.c.seq)


_CLIENT_RANDOMS = Prebuilt(_by_client_randoms)


def find_by_client_randoms(
    conn: Connection, keys: Collection[tuple[str, str, int]], since: datetime
) -> dict[tuple[str, str, int], Message]:
    """What these (conversation_id, sender_id, client_random) duplicate, in one query: the keys
    that have a message sent since `since`, each with its latest one."""
    return find_by_client_randoms_later(conn, keys, since)()


def find_by_client_randoms_later(
    conn: Connection, keys: Collection[tuple[str, str, int]], since: datetime
) -> Callable[[], dict[tuple[str, str, int], Message]]:
    """`find_by_client_randoms`, sent now, read when the returned function is called."""
    if not keys:
        return dict
    ordered = list(keys)
    pending = _CLIENT_RANDOMS.send(
        conn,
        {
            "conversation_ids": [k[0] for k in ordered],
            "sender_ids": [k[1] for k in ordered],
            "client_randoms": [k[2] for k in ordered],
            "since": since,
        },
    )

    def read() -> dict[tuple[str, str, int], Message]:
        found: dict[tuple[str, str, int], Message] = {}
        for row in pending.rows():
            key = (row["conversation_id"], row["sender_id"], int(row["client_random"]))
            if key in keys:
                found[key] = _message(row)  # ascending seq: the latest wins
        return found

    return read


def update_message(conn: Connection, message_id: str, **values: Any) -> None:
    conn.execute(update(messages).where(messages.c.id == message_id).values(**values))


def _visible_to(user_id: str, now: datetime) -> ColumnElement[bool]:
    return and_(
        messages.c.is_expired.is_(False),
        or_(messages.c.expires_at.is_(None), messages.c.expires_at > now),
        ~exists().where(hidden_messages.c.user_id == user_id, hidden_messages.c.message_id == messages.c.id),
    )


def is_visible(conn: Connection, message_id: str, user_id: str, now: datetime) -> bool:
    return bool(
        conn.execute(select(messages.c.id).where(messages.c.id == message_id, _visible_to(user_id, now))).first()
    )


def last_messages(conn: Connection, conversation_ids: Sequence[str], user_id: str, now: datetime) -> dict[str, Message]:
    """The newest visible message of each conversation, in one query."""
    if not conversation_ids:
        return {}
    latest = (
        select(messages.c.conversation_id, func.max(messages.c.seq).label("seq"))
        .where(messages.c.conversation_id.in_(conversation_ids), _visible_to(user_id, now))
        .group_by(messages.c.conversation_id)
        .subquery()
    )
    rows = conn.execute(
        select(*MESSAGE_COLUMNS).join(
            latest,
            and_(
                messages.c.conversation_id == latest.c.conversation_id,
                messages.c.seq == latest.c.seq,
            ),
        )
    )
    return {m.conversation_id: m for m in map(_message, rows)}


def hide_message(conn: Connection, message: Message, user_id: str, now: datetime) -> None:
    already = conn.execute(
        select(hidden_messages.c.message_id).where(
            hidden_messages.c.user_id == user_id, hidden_messages.c.message_id == message.id
        )
    ).first()
    if not already:
        conn.execute(
            insert(hidden_messages).values(
                user_id=user_id, message_id=message.id, conversation_id=message.conversation_id, hidden_at=now
            )
        )


def current_sender_key(conn: Connection, user_id: str, device_id: str) -> str | None:
    return conn.execute(
        select(sender_keys.c.public_key).where(
            sender_keys.c.user_id == user_id,
            sender_keys.c.device_id == device_id,
            sender_keys.c.replaced_at.is_(None),
        )
    ).scalar()


def lock_sender_keys(conn: Connection, user_id: str, device_id: str) -> None:
    """Serialise changes of one device's key until commit (two concurrent changes would both
    retire the same key and leave two current ones). SQLite: BEGIN IMMEDIATE already does."""
    if conn.dialect.name == "postgresql":
        key = f"sender_keys:{user_id}:{device_id}"
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(key, 0))))


def record_sender_key(conn: Connection, user_id: str, device_id: str, public_key: str, now: datetime) -> None:
    """Retire the device's current key (kept as history) and record the new one."""
    conn.execute(
        update(sender_keys)
        .where(
            sender_keys.c.user_id == user_id,
            sender_keys.c.device_id == device_id,
            sender_keys.c.replaced_at.is_(None),
        )
        .values(replaced_at=now)
    )
    conn.execute(
        insert(sender_keys).values(user_id=user_id, device_id=device_id, public_key=public_key, first_seen_at=now)
    )


def replaced_sender_key_at(conn: Connection, user_id: str, device_id: str, public_key: str) -> datetime | None:
    """When the device last stopped using `public_key` (None: never one of its replaced keys)."""
    value: datetime | None = conn.execute(
        select(func.max(sender_keys.c.replaced_at)).where(
            sender_keys.c.user_id == user_id,
            sender_keys.c.device_id == device_id,
            sender_keys.c.public_key == public_key,
            sender_keys.c.replaced_at.is_not(None),
        )
    ).scalar()
    return value


def lock_message(conn: Connection, message_id: str) -> None:
    """Serialise writers of one message's satellites (reactions, attachments) until commit."""
    conn.execute(select(messages.c.id).where(messages.c.id == message_id).with_for_update())


def activity(conn: Connection, conversation_id: str) -> tuple[int, datetime | None]:
    """How many messages the conversation holds (deleted ones left out) and when the last was sent."""
    row = conn.execute(
        select(func.count(), func.max(messages.c.sent_at)).where(
            messages.c.conversation_id == conversation_id, messages.c.is_deleted.is_(False)
        )
    ).one()
    return int(row[0]), row[1]
