"""Queries on conversations and their members."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import BigInteger, Connection, Row, and_, bindparam, func, insert, select, update

from shared.domain.models import Conversation, Member
from shared.storage.schema import conversations, members, messages
from shared.storage.sql import Prebuilt, any_of
from shared.storage.types import UTCDateTime

T = TypeVar("T")

_MEMBER_FIELDS = [c.name for c in members.columns if c.name != "updated_at"]


def _conversation(row: Row[Any] | Mapping[str, Any]) -> Conversation:
    m = row._mapping if isinstance(row, Row) else row
    return Conversation(
        id=m["id"],
        type=m["type"],
        name=m["name"],
        metadata=m["metadata"],
        created_by=m["created_by"],
        created_at=m["created_at"],
        updated_at=m["updated_at"],
        is_active=m["is_active"],
        last_seq=m["last_seq"],
        last_message_at=m["last_message_at"],
    )


def _member(row: Row[Any] | Mapping[str, Any]) -> Member:
    m = row._mapping if isinstance(row, Row) else row
    return Member(**{name: m[name] for name in _MEMBER_FIELDS})


def insert_conversation(conn: Connection, conv: Conversation, direct_key: str | None) -> None:
    conn.execute(
        insert(conversations).values(
            id=conv.id,
            type=conv.type,
            name=conv.name,
            metadata=conv.metadata,
            created_by=conv.created_by,
            direct_key=direct_key,
            created_at=conv.created_at,
            updated_at=conv.updated_at,
            is_active=conv.is_active,
            last_seq=conv.last_seq,
        )
    )


def get_conversation(conn: Connection, conversation_id: str) -> Conversation | None:
    row = conn.execute(select(conversations).where(conversations.c.id == conversation_id)).first()
    return _conversation(row) if row else None


def find_direct(conn: Connection, key: str) -> Conversation | None:
    row = conn.execute(select(conversations).where(conversations.c.direct_key == key)).first()
    return _conversation(row) if row else None


def update_conversation(conn: Connection, conversation_id: str, **values: Any) -> None:
    conn.execute(update(conversations).where(conversations.c.id == conversation_id).values(**values))


_TAKE_SEQS = Prebuilt(
    lambda postgres: update(conversations)
    .where(any_of(postgres, conversations.c.id, "ids"))
    .values(
        last_seq=conversations.c.last_seq + bindparam("count", type_=BigInteger),
        last_message_at=bindparam("now", type_=UTCDateTime),
        updated_at=bindparam("now", type_=UTCDateTime),
    )
    .returning(conversations.c.id, conversations.c.last_seq)
)
_LOCK_CONVERSATIONS = Prebuilt(
    lambda postgres: select(conversations)
    .where(any_of(postgres, conversations.c.id, "ids"))
    .order_by(conversations.c.id)
    .with_for_update(key_share=True)  # FOR NO KEY UPDATE: what an UPDATE of the row takes
)
_ACTIVE_MEMBER_IDS_OF = Prebuilt(
    lambda postgres: select(members.c.conversation_id, members.c.user_id)
    .where(any_of(postgres, members.c.conversation_id, "ids"), members.c.is_active.is_(True))
    .order_by(members.c.joined_at, members.c.user_id)
)
_ACTIVE_MEMBERS_OF = Prebuilt(
    lambda postgres: select(members)
    .where(any_of(postgres, members.c.conversation_id, "ids"), members.c.is_active.is_(True))
    .order_by(members.c.joined_at, members.c.user_id)
)


def next_seq(conn: Connection, conversation_id: str, now: datetime) -> int:
    """Take the next `seq`. The row lock this UPDATE holds until commit serialises the
    conversation's writers, which is what makes `seq` gap-free and check-then-insert safe."""
    return take_seqs(conn, {conversation_id: 1}, now)[conversation_id]


def take_seqs(conn: Connection, counts: Mapping[str, int], now: datetime) -> dict[str, int]:
    """Take `counts[id]` consecutive `seq`s in each conversation: the new `last_seq` of each (its
    range is `last_seq - count + 1 .. last_seq`), in one statement per distinct count (a batch of
    single messages to many conversations: one). Like `next_seq`, the row locks hold until commit."""
    return take_seqs_later(conn, counts, now)()


def take_seqs_later(conn: Connection, counts: Mapping[str, int], now: datetime) -> Callable[[], dict[str, int]]:
    """`take_seqs`, its statements sent now (in a pipeline: with the others), its answer read
    when the returned function is called (after the pipeline's round trip)."""
    if not counts:
        return dict
    by_count: dict[int, list[str]] = {}
    for conversation_id, count in sorted(counts.items()):
        by_count.setdefault(count, []).append(conversation_id)
    # one statement per distinct count: usually one
    sent = [_TAKE_SEQS.send(conn, {"ids": ids, "count": count, "now": now}) for count, ids in sorted(by_count.items())]

    def read() -> dict[str, int]:
        taken = {row["id"]: int(row["last_seq"]) for pending in sent for row in pending.rows()}
        if len(taken) != len(counts):
            raise LookupError(f"conversations not found: {sorted(set(counts) - set(taken))}")
        return taken

    return read


def lock_conversation(conn: Connection, conversation_id: str) -> None:
    """Serialise with senders of this conversation without taking a seq."""
    conn.execute(
        update(conversations).where(conversations.c.id == conversation_id).values(last_seq=conversations.c.last_seq)
    )


def lock_conversations(conn: Connection, conversation_ids: Collection[str]) -> dict[str, Conversation]:
    """Lock these conversations like `lock_conversation` (serialising with their senders) and read
    them as locked, in one query. Rows are locked in id order, so two transactions locking
    overlapping sets this way cannot deadlock. Unknown ids are left out."""
    return lock_conversations_later(conn, conversation_ids)()


def lock_conversations_later(
    conn: Connection, conversation_ids: Collection[str]
) -> Callable[[], dict[str, Conversation]]:
    """`lock_conversations`, sent now, read when the returned function is called."""
    if not conversation_ids:
        return dict
    pending = _LOCK_CONVERSATIONS.send(conn, {"ids": sorted(conversation_ids)})
    return lambda: {row["id"]: _conversation(row) for row in pending.rows()}


_BY_IDS = Prebuilt(lambda postgres: select(conversations).where(any_of(postgres, conversations.c.id, "ids")))


def get_conversations(conn: Connection, conversation_ids: Collection[str]) -> dict[str, Conversation]:
    """The conversations with these ids that exist, by id, in one query (no lock)."""
    if not conversation_ids:
        return {}
    return {row.id: _conversation(row) for row in conn.execute(_BY_IDS(conn), {"ids": list(conversation_ids)})}


def insert_member(conn: Connection, member: Member, now: datetime) -> None:
    values = {name: getattr(member, name) for name in _MEMBER_FIELDS}
    conn.execute(insert(members).values(**values, updated_at=now))


def get_member(conn: Connection, conversation_id: str, user_id: str) -> Member | None:
    row = conn.execute(
        select(members).where(members.c.conversation_id == conversation_id, members.c.user_id == user_id)
    ).first()
    return _member(row) if row else None


def list_members(conn: Connection, conversation_id: str, *, active_only: bool = True) -> list[Member]:
    query = select(members).where(members.c.conversation_id == conversation_id)
    if active_only:
        query = query.where(members.c.is_active.is_(True))
    return [_member(r) for r in conn.execute(query.order_by(members.c.joined_at, members.c.user_id))]


def members_of(conn: Connection, conversation_ids: Sequence[str]) -> dict[str, list[Member]]:
    """Active members of many conversations in one query (no N+1 on listings)."""
    return members_of_later(conn, conversation_ids)()


def members_of_later(conn: Connection, conversation_ids: Sequence[str]) -> Callable[[], dict[str, list[Member]]]:
    """`members_of`, sent now, read when the returned function is called."""
    return _by_conversation_later(conn, _ACTIVE_MEMBERS_OF, conversation_ids, _member)


def member_ids_of_later(conn: Connection, conversation_ids: Sequence[str]) -> Callable[[], dict[str, list[str]]]:
    """The active members' user ids of many conversations (in `members_of`'s order), in one
    query, sent now, read when the returned function is called: what a send needs of them (who
    is a member, who hears it), without a `Member` and its five timestamps per row."""
    return _by_conversation_later(conn, _ACTIVE_MEMBER_IDS_OF, conversation_ids, lambda row: row["user_id"])


def _by_conversation_later(
    conn: Connection, query: Prebuilt[Any], conversation_ids: Sequence[str], value: Callable[[Any], T]
) -> Callable[[], dict[str, list[T]]]:
    """The rows of `query` (bound to the ids as `ids`) grouped by their `conversation_id`, each
    made a value by `value`; sent now, read when the returned function is called."""
    if not conversation_ids:
        return lambda: {cid: [] for cid in conversation_ids}
    pending = query.send(conn, {"ids": list(conversation_ids)})

    def read() -> dict[str, list[T]]:
        result: dict[str, list[T]] = {cid: [] for cid in conversation_ids}
        for row in pending.rows():
            result[row["conversation_id"]].append(value(row))
        return result

    return read


def update_member(conn: Connection, conversation_id: str, user_id: str, now: datetime, **values: Any) -> None:
    conn.execute(
        update(members)
        .where(members.c.conversation_id == conversation_id, members.c.user_id == user_id)
        .values(**values, updated_at=now)
    )


def advance_watermark(
    conn: Connection, conversation_id: str, user_id: str, column: str, seq: int, now: datetime
) -> bool:
    """Move a watermark forward only (never back); True if it moved."""
    col = members.c[column]
    result = conn.execute(
        update(members)
        .where(
            members.c.conversation_id == conversation_id,
            members.c.user_id == user_id,
            col < seq,
        )
        .values({column: seq, "updated_at": now})
    )
    return bool(result.rowcount)


def conversations_of_user(
    conn: Connection, user_id: str, *, archived: bool | None
) -> list[tuple[Conversation, Member]]:
    """The user's active conversations with their own member row, most recent activity first."""
    query = (
        select(conversations, *[members.c[n].label(f"m_{n}") for n in _MEMBER_FIELDS])
        .join(members, members.c.conversation_id == conversations.c.id)
        .where(
            members.c.user_id == user_id,
            members.c.is_active.is_(True),
            conversations.c.is_active.is_(True),
        )
        .order_by(
            func.coalesce(conversations.c.last_message_at, conversations.c.created_at).desc(),
            conversations.c.id.desc(),
        )
    )
    if archived is not None:
        query = query.where(members.c.is_archived.is_(archived))
    out = []
    for row in conn.execute(query):
        m = row._mapping
        member = Member(**{n: m[f"m_{n}"] for n in _MEMBER_FIELDS})
        out.append((_conversation(row), member))
    return out


def unread_counts(conn: Connection, user_id: str, conversation_ids: Sequence[str]) -> dict[str, int]:
    """Messages from others after the user's read watermark, per conversation, in one query."""
    if not conversation_ids:
        return {}
    rows = conn.execute(
        select(messages.c.conversation_id, func.count())
        .join(
            members,
            and_(
                members.c.conversation_id == messages.c.conversation_id,
                members.c.user_id == user_id,
            ),
        )
        .where(
            messages.c.conversation_id.in_(conversation_ids),
            messages.c.seq > members.c.last_read_seq,
            messages.c.sender_id != user_id,
            messages.c.is_deleted.is_(False),
            messages.c.is_expired.is_(False),
        )
        .group_by(messages.c.conversation_id)
    )
    return {cid: int(n) for cid, n in rows}


def count_pinned(conn: Connection, user_id: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(members)
            .join(conversations, conversations.c.id == members.c.conversation_id)
            .where(
                members.c.user_id == user_id,
                members.c.is_active.is_(True),
                members.c.is_pinned.is_(True),
                conversations.c.is_active.is_(True),
            )
        ).scalar_one()
    )
