"""Queries on scheduled messages, and on ephemeral messages waiting for their expiry.

Claims are single conditional UPDATEs: whichever scheduler instance's UPDATE matches the row
first owns it, every other one matches nothing (exactly-once firing without a lock service).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Row, and_, func, insert, or_, select, update

from shared.domain.models import ScheduledMessage
from shared.storage.schema import messages, scheduled_messages

_T = scheduled_messages
_FIELDS = list(ScheduledMessage.__dataclass_fields__)


def _scheduled(row: Row[Any]) -> ScheduledMessage:
    m = row._mapping
    return ScheduledMessage(**{name: m[name] for name in _FIELDS})


def insert_scheduled(conn: Connection, item: ScheduledMessage) -> None:
    conn.execute(insert(_T).values(**asdict(item)))


def get_scheduled(conn: Connection, scheduled_id: str) -> ScheduledMessage | None:
    row = conn.execute(select(_T).where(_T.c.id == scheduled_id)).first()
    return _scheduled(row) if row else None


def find_by_client_random(
    conn: Connection, sender_id: str, conversation_id: str, client_random: int, since: datetime
) -> ScheduledMessage | None:
    """A retried POST: the scheduled message this sender already made with this client_random."""
    row = conn.execute(
        select(_T)
        .where(
            _T.c.sender_id == sender_id,
            _T.c.conversation_id == conversation_id,
            _T.c.client_random == client_random,
            _T.c.created_at >= since,
        )
        .order_by(_T.c.created_at.desc())
        .limit(1)
    ).first()
    return _scheduled(row) if row else None


def count_pending(conn: Connection, sender_id: str) -> int:
    return int(
        conn.execute(
            select(func.count())
            .select_from(_T)
            .where(_T.c.sender_id == sender_id, _T.c.status.in_(("pending", "sending")))
        ).scalar_one()
    )


def list_for_sender(
    conn: Connection, sender_id: str, statuses: Sequence[str], conversation_id: str | None = None
) -> list[ScheduledMessage]:
    query = select(_T).where(_T.c.sender_id == sender_id, _T.c.status.in_(list(statuses)))
    if conversation_id is not None:
        query = query.where(_T.c.conversation_id == conversation_id)
    return [_scheduled(r) for r in conn.execute(query.order_by(_T.c.scheduled_at, _T.c.created_at, _T.c.id))]


def update_pending(conn: Connection, scheduled_id: str, now: datetime, **values: Any) -> ScheduledMessage | None:
    """Change a row only while it is still pending (a scheduler may claim it concurrently)."""
    row = conn.execute(
        update(_T)
        .where(_T.c.id == scheduled_id, _T.c.status == "pending")
        .values(**values, updated_at=now)
        .returning(*_T.c)
    ).first()
    return _scheduled(row) if row else None


def claim(conn: Connection, scheduled_id: str, now: datetime, stale_before: datetime) -> ScheduledMessage | None:
    """Take a due row for sending: pending and due, or claimed by an instance that has not
    finished it since `stale_before` (crashed). None when someone else has it or it is not due."""
    row = conn.execute(
        update(_T)
        .where(
            _T.c.id == scheduled_id,
            or_(
                and_(_T.c.status == "pending", _T.c.scheduled_at <= now),
                and_(_T.c.status == "sending", _T.c.updated_at <= stale_before),
            ),
        )
        .values(status="sending", updated_at=now)
        .returning(*_T.c)
    ).first()
    return _scheduled(row) if row else None


def finish(
    conn: Connection,
    scheduled_id: str,
    now: datetime,
    status: str,
    *,
    message_id: str | None = None,
    failure_reason: str | None = None,
) -> ScheduledMessage | None:
    row = conn.execute(
        update(_T)
        .where(_T.c.id == scheduled_id, _T.c.status == "sending")
        .values(status=status, message_id=message_id, failure_reason=failure_reason, updated_at=now)
        .returning(*_T.c)
    ).first()
    return _scheduled(row) if row else None


def due_ids(conn: Connection, now: datetime, stale_before: datetime, limit: int) -> list[str]:
    rows = conn.execute(
        select(_T.c.id)
        .where(
            or_(
                and_(_T.c.status == "pending", _T.c.scheduled_at <= now),
                and_(_T.c.status == "sending", _T.c.updated_at <= stale_before),
            )
        )
        .order_by(_T.c.scheduled_at)
        .limit(limit)
    )
    return [r.id for r in rows]


def next_due(conn: Connection, lease_seconds: float) -> datetime | None:
    """When the next scheduled row needs attention: a pending one's due time, or a claimed
    one's lease end."""
    pending: datetime | None = conn.execute(
        select(func.min(_T.c.scheduled_at)).where(_T.c.status == "pending")
    ).scalar()
    claimed: datetime | None = conn.execute(select(func.min(_T.c.updated_at)).where(_T.c.status == "sending")).scalar()
    if claimed is not None:
        claimed += timedelta(seconds=lease_seconds)
    candidates = [t for t in (pending, claimed) if t is not None]
    return min(candidates) if candidates else None


# ephemeral messages


def expire_due(
    conn: Connection, now: datetime, limit: int, conversation_id: str | None = None
) -> list[tuple[str, str, int]]:
    """Purge the content of messages whose `expires_at` has come, at most `limit` of them;
    returns (id, conversation_id, seq) of those this call expired. The `NOT is_expired` guard
    in the UPDATE makes concurrent callers expire each message once (SKIP LOCKED on
    PostgreSQL keeps them from queueing behind each other)."""
    due = select(messages.c.id).where(
        messages.c.expires_at.is_not(None), messages.c.expires_at <= now, messages.c.is_expired.is_(False)
    )
    if conversation_id is not None:
        due = due.where(messages.c.conversation_id == conversation_id)
    due = due.order_by(messages.c.expires_at).limit(limit).with_for_update(skip_locked=True)
    rows = conn.execute(
        update(messages)
        .where(messages.c.id.in_(due.scalar_subquery()), messages.c.is_expired.is_(False))
        .values(content="", metadata={}, signature=None, is_expired=True)
        .returning(messages.c.id, messages.c.conversation_id, messages.c.seq)
    ).all()
    return [(r.id, r.conversation_id, int(r.seq)) for r in rows]


def next_expiry(conn: Connection) -> datetime | None:
    value: datetime | None = conn.execute(
        select(func.min(messages.c.expires_at)).where(
            messages.c.expires_at.is_not(None), messages.c.is_expired.is_(False)
        )
    ).scalar()
    return value


# what a scheduler with a horizon (Cloud Tasks: 30 days) is handed by the periodic sweep


def pending_due_between(
    conn: Connection, after: datetime, until: datetime, limit: int, start: tuple[datetime, str] | None = None
) -> list[tuple[str, datetime]]:
    """(id, scheduled_at) of pending scheduled messages due in (after, until], by time then id,
    from after `start` (the last pair of the previous page)."""
    query = select(_T.c.id, _T.c.scheduled_at).where(
        _T.c.status == "pending", _T.c.scheduled_at > after, _T.c.scheduled_at <= until
    )
    if start is not None:
        query = query.where(or_(_T.c.scheduled_at > start[0], and_(_T.c.scheduled_at == start[0], _T.c.id > start[1])))
    rows = conn.execute(query.order_by(_T.c.scheduled_at, _T.c.id).limit(limit))
    return [(r.id, r.scheduled_at) for r in rows]


def expiring_between(
    conn: Connection, after: datetime, until: datetime, limit: int, start: tuple[datetime, str] | None = None
) -> list[tuple[str, datetime]]:
    """(id, expires_at) of ephemeral messages not yet expired whose time is in (after, until]."""
    m = messages.c
    query = select(m.id, m.expires_at).where(
        m.expires_at.is_not(None), m.is_expired.is_(False), m.expires_at > after, m.expires_at <= until
    )
    if start is not None:
        query = query.where(or_(m.expires_at > start[0], and_(m.expires_at == start[0], m.id > start[1])))
    rows = conn.execute(query.order_by(m.expires_at, m.id).limit(limit))
    return [(r.id, r.expires_at) for r in rows]
