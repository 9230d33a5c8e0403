"""The read path's queries (`GET .../messages`, `GET /messages/<id>`): few statements, each
built once.

A history read used to take four statements (the conversation, the caller's membership, the
page, the member list), each built anew on every call; SQLAlchemy then spent more time building
and cache-keying them than PostgreSQL spent running them. Here the conversation, the caller's
membership and the member list are one statement (`access`), the page is one more, and every
statement is a module-level object with bound parameters, so a call only binds values
(SQLAlchemy finds the compiled form without rebuilding the statement or its cache key, and
psycopg prepares the unchanging SQL text on the server). On psycopg the two run in autocommit
(`reading`): with the pool's ping, a read is three round trips where it was seven.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Integer,
    Row,
    Select,
    and_,
    bindparam,
    exists,
    or_,
    select,
)

from shared.domain.models import Member, Message
from shared.storage.engine import Database
from shared.storage.schema import conversations, hidden_messages, members, messages

_MESSAGE_FIELDS = list(Message.__dataclass_fields__)
_MESSAGE_COLUMNS = [messages.c[name] for name in _MESSAGE_FIELDS]
_MEMBER_FIELDS = [c.name for c in members.columns if c.name != "updated_at"]


@contextmanager
def reading(db: Database) -> Iterator[Connection]:
    """A connection for a read whose statements need no common snapshot (each is answered as of
    its own start, as in a READ COMMITTED transaction). On psycopg it runs in autocommit, which
    saves the BEGIN and COMMIT round trips (switching psycopg to autocommit and back sends
    nothing); elsewhere (SQLite, whose transactions here take the write lock up front, and
    pg8000, which would send two statements to switch back) it is an ordinary transaction."""
    if db.engine.dialect.driver == "psycopg":
        with db.connect() as conn:
            conn.execution_options(isolation_level="AUTOCOMMIT")
            yield conn
    else:
        with db.transaction() as conn:
            yield conn


def _message(row: Row[Any]) -> Message:
    return Message(*row[: len(_MESSAGE_FIELDS)])


@dataclass(frozen=True)
class Access:
    """What a read needs to know about the conversation: whether it exists and is active, and
    its active members (the caller among them, if they are one)."""

    exists: bool
    is_active: bool
    members: list[Member]

    def member(self, user_id: str) -> Member | None:
        return next((m for m in self.members if m.user_id == user_id), None)


# The conversation with its active members, in one statement: one row per active member, or
# one row with NULL member columns if it has none; no row if the conversation does not exist.
_ACCESS = (
    select(conversations.c.is_active.label("conversation_is_active"), *[members.c[n] for n in _MEMBER_FIELDS])
    .select_from(
        conversations.outerjoin(
            members, and_(members.c.conversation_id == conversations.c.id, members.c.is_active.is_(True))
        )
    )
    .where(conversations.c.id == bindparam("conversation_id"))
    .order_by(members.c.joined_at, members.c.user_id)
)


def access(conn: Connection, conversation_id: str) -> Access:
    rows = conn.execute(_ACCESS, {"conversation_id": conversation_id}).all()
    if not rows:
        return Access(exists=False, is_active=False, members=[])
    found = [Member(**dict(zip(_MEMBER_FIELDS, row[1:], strict=True))) for row in rows if row.user_id is not None]
    return Access(exists=True, is_active=bool(rows[0].conversation_is_active), members=found)


def _visible(in_conversation: bool) -> ColumnElement[bool]:
    """What `shared.storage.messages` calls visible to :user_id at :now: not expired, and not
    hidden by that user. With `in_conversation`, the hidden rows looked at are those of
    :conversation_id only (a hidden row carries its message's conversation), so the anti-join
    reads one range of the (user_id, conversation_id) index rather than all the user's rows."""
    hidden = [hidden_messages.c.user_id == bindparam("user_id"), hidden_messages.c.message_id == messages.c.id]
    if in_conversation:
        hidden.append(hidden_messages.c.conversation_id == bindparam("conversation_id"))
    now = bindparam("now", type_=messages.c.expires_at.type)
    return and_(
        messages.c.is_expired.is_(False),
        or_(messages.c.expires_at.is_(None), messages.c.expires_at > now),
        ~exists().where(*hidden),
    )


_MESSAGE = select(*_MESSAGE_COLUMNS).where(messages.c.id == bindparam("message_id"))
_VISIBLE_MESSAGE = select(*_MESSAGE_COLUMNS, _visible(in_conversation=False).label("visible")).where(
    messages.c.id == bindparam("message_id")
)


def get_message(conn: Connection, message_id: str) -> Message | None:
    row = conn.execute(_MESSAGE, {"message_id": message_id}).first()
    return _message(row) if row else None


def get_visible_message(conn: Connection, message_id: str, user_id: str, now: datetime) -> tuple[Message, bool] | None:
    """The message and whether `user_id` may see it now (unexpired, not hidden), in one statement."""
    row = conn.execute(_VISIBLE_MESSAGE, {"message_id": message_id, "user_id": user_id, "now": now}).first()
    return (_message(row), bool(row.visible)) if row else None


@dataclass(frozen=True)
class HistoryPage:
    messages: list[Message]  # newest first
    has_more: bool


_PAGES: dict[tuple[bool, bool, bool, bool], Select[Any]] = {}


def _page_statement(before_seq: bool, after_seq: bool, before: bool, after: bool) -> Select[Any]:
    """The page statement for this combination of cursors (16 at most, each built once)."""
    key = (before_seq, after_seq, before, after)
    statement = _PAGES.get(key)
    if statement is None:
        statement = select(*_MESSAGE_COLUMNS).where(
            messages.c.conversation_id == bindparam("conversation_id"), _visible(in_conversation=True)
        )
        if before_seq:
            statement = statement.where(messages.c.seq < bindparam("before_seq"))
        if after_seq:
            statement = statement.where(messages.c.seq > bindparam("after_seq"))
        if before:
            statement = statement.where(messages.c.sent_at < bindparam("before"))
        if after:
            statement = statement.where(messages.c.sent_at > bindparam("after"))
        forward = after_seq or (after and not before_seq and not before)
        order = messages.c.seq.asc() if forward else messages.c.seq.desc()
        statement = statement.order_by(order).limit(bindparam("limit", type_=Integer))
        _PAGES[key] = statement
    return statement


def history(
    conn: Connection,
    conversation_id: str,
    user_id: str,
    now: datetime,
    *,
    limit: int,
    before_seq: int | None = None,
    after_seq: int | None = None,
    before: datetime | None = None,
    after: datetime | None = None,
) -> HistoryPage:
    """A page of the messages `user_id` may see now, newest first. Going forward (`after_*`)
    takes the `limit` messages right after the cursor; `has_more` is true exactly when more
    exist in that direction."""
    statement = _page_statement(before_seq is not None, after_seq is not None, before is not None, after is not None)
    params: dict[str, Any] = {"conversation_id": conversation_id, "user_id": user_id, "now": now, "limit": limit + 1}
    cursors = {"before_seq": before_seq, "after_seq": after_seq, "before": before, "after": after}
    params.update((name, value) for name, value in cursors.items() if value is not None)
    rows = [_message(r) for r in conn.execute(statement, params).all()]
    has_more = len(rows) > limit
    rows = rows[:limit]
    forward = after_seq is not None or (after is not None and before_seq is None and before is None)
    if forward:
        rows.reverse()
    return HistoryPage(rows, has_more)
