"""Queries on reports and conversation sanctions."""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, bindparam, func, insert, or_, select, update

from shared.domain.moderation import Report, Sanction
from shared.storage.schema import reports, sanctions
from shared.storage.sql import Prebuilt, any_of
from shared.storage.types import UTCDateTime

_REPORT_FIELDS = [f for f in Report.__dataclass_fields__]
_SANCTION_FIELDS = [f for f in Sanction.__dataclass_fields__]


def _report(row: Row[Any]) -> Report:
    m = row._mapping
    return Report(**{name: m[name] for name in _REPORT_FIELDS})


def _sanction(row: Row[Any] | Mapping[str, Any]) -> Sanction:
    m = row._mapping if isinstance(row, Row) else row
    return Sanction(**{name: m[name] for name in _SANCTION_FIELDS})


# reports


def lock_reporter(conn: Connection, reporter_id: str) -> None:
    """Serialise one reporter's reports until commit, so the cooldown and the daily limit are
    checked and used atomically. (SQLite: BEGIN IMMEDIATE already serialises writers.)"""
    if conn.dialect.name == "postgresql":
        conn.execute(select(func.pg_advisory_xact_lock(func.hashtextextended("report:" + reporter_id, 0))))


def insert_report(conn: Connection, report: Report) -> None:
    conn.execute(insert(reports).values(**{name: getattr(report, name) for name in _REPORT_FIELDS}))


def get_report(conn: Connection, report_id: str) -> Report | None:
    row = conn.execute(select(reports).where(reports.c.id == report_id)).first()
    return _report(row) if row else None


def latest_report_on(
    conn: Connection, reporter_id: str, *, message_id: str | None, user_id: str | None, since: datetime
) -> Report | None:
    """The reporter's newest report since `since` on this message (or, for a report on a user
    without a message, on this user)."""
    query = select(reports).where(reports.c.reporter_id == reporter_id, reports.c.created_at > since)
    if message_id is not None:
        query = query.where(reports.c.message_id == message_id)
    else:
        query = query.where(reports.c.message_id.is_(None), reports.c.reported_user_id == user_id)
    row = conn.execute(query.order_by(reports.c.created_at.desc()).limit(1)).first()
    return _report(row) if row else None


def reports_since(conn: Connection, reporter_id: str, since: datetime) -> tuple[int, datetime | None]:
    """How many reports the reporter made after `since`, and when the oldest of them was made."""
    count, oldest = conn.execute(
        select(func.count(), func.min(reports.c.created_at)).where(
            reports.c.reporter_id == reporter_id, reports.c.created_at > since
        )
    ).one()
    return int(count), oldest


def reports_by(conn: Connection, reporter_id: str, *, limit: int, offset: int) -> list[Report]:
    """The reporter's own reports, newest first (`limit` + 1 rows tell whether more exist)."""
    rows = conn.execute(
        select(reports)
        .where(reports.c.reporter_id == reporter_id)
        .order_by(reports.c.created_at.desc(), reports.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    return [_report(r) for r in rows]


def queued_reports(
    conn: Connection, *, limit: int, offset: int, statuses: Sequence[str] = ("pending",), category: str | None = None
) -> list[Report]:
    """The moderators' queue: the reports of these statuses (pending ones by default), oldest first."""
    query = select(reports).where(reports.c.status.in_(statuses))
    if category is not None:
        query = query.where(reports.c.category == category)
    rows = conn.execute(query.order_by(reports.c.created_at, reports.c.id).limit(limit).offset(offset))
    return [_report(r) for r in rows]


def report_counts(conn: Connection) -> list[tuple[str, str, str | None, int]]:
    """(status, category, resolution, count) for every combination that has reports."""
    rows = conn.execute(
        select(reports.c.status, reports.c.category, reports.c.resolution, func.count()).group_by(
            reports.c.status, reports.c.category, reports.c.resolution
        )
    )
    return [(status, category, resolution, int(n)) for status, category, resolution, n in rows]


def resolved_since(conn: Connection, since: datetime) -> int:
    """How many reports were resolved at or after `since`."""
    return int(conn.execute(select(func.count()).where(reports.c.resolved_at >= since)).scalar_one())


def resolve_report(conn: Connection, report_id: str, **values: Any) -> bool:
    """Resolve an open report; False if it was no longer open (someone else resolved it)."""
    result = conn.execute(
        update(reports)
        .where(reports.c.id == report_id, reports.c.status.in_(("pending", "under_review")))
        .values(**values)
    )
    return bool(result.rowcount)


# sanctions


def insert_sanction(conn: Connection, sanction: Sanction) -> None:
    conn.execute(insert(sanctions).values(**{name: getattr(sanction, name) for name in _SANCTION_FIELDS}))


def get_sanction(conn: Connection, sanction_id: str) -> Sanction | None:
    row = conn.execute(select(sanctions).where(sanctions.c.id == sanction_id)).first()
    return _sanction(row) if row else None


def _in_force(now: Any) -> Any:  # a datetime, or a bound parameter for one
    return (sanctions.c.revoked_at.is_(None), or_(sanctions.c.expires_at.is_(None), sanctions.c.expires_at > now))


def sanctions_in_force(
    conn: Connection, conversation_id: str, user_ids: Sequence[str], now: datetime, kinds: Sequence[str]
) -> list[Sanction]:
    """The sanctions of these kinds in force now on these members, the longest-lasting first."""
    if not user_ids:
        return []
    rows = conn.execute(
        select(sanctions)
        .where(
            sanctions.c.conversation_id == conversation_id,
            sanctions.c.user_id.in_(user_ids),
            sanctions.c.kind.in_(kinds),
            *_in_force(now),
        )
        .order_by(sanctions.c.expires_at.desc().nulls_first())  # until lifted lasts longest
    )
    return [_sanction(r) for r in rows]


_SANCTIONS_AMONG = Prebuilt(
    lambda postgres: select(sanctions)
    .where(
        any_of(postgres, sanctions.c.conversation_id, "conversation_ids"),
        any_of(postgres, sanctions.c.user_id, "user_ids"),
        any_of(postgres, sanctions.c.kind, "kinds"),
        *_in_force(bindparam("now", type_=UTCDateTime)),
    )
    .order_by(sanctions.c.expires_at.desc().nulls_first())
)


def sanctions_in_force_among(
    conn: Connection, pairs: Collection[tuple[str, str]], now: datetime, kinds: Sequence[str]
) -> dict[tuple[str, str], list[Sanction]]:
    """`sanctions_in_force` for many (conversation_id, user_id) pairs in one query: the pairs
    that have some, each with its sanctions, the longest-lasting first."""
    return sanctions_in_force_among_later(conn, pairs, now, kinds)()


def sanctions_in_force_among_later(
    conn: Connection, pairs: Collection[tuple[str, str]], now: datetime, kinds: Sequence[str]
) -> Callable[[], dict[tuple[str, str], list[Sanction]]]:
    """`sanctions_in_force_among`, sent now (in the group commit's pipeline), read when the
    returned function is called."""
    if not pairs:
        return dict
    pending = _SANCTIONS_AMONG.send(
        conn,
        {
            "conversation_ids": list({c for c, _ in pairs}),
            "user_ids": list({u for _, u in pairs}),
            "kinds": list(kinds),
            "now": now,
        },
    )

    def read() -> dict[tuple[str, str], list[Sanction]]:
        found: dict[tuple[str, str], list[Sanction]] = {}
        for row in pending.rows():
            if (row["conversation_id"], row["user_id"]) in pairs:
                found.setdefault((row["conversation_id"], row["user_id"]), []).append(_sanction(row))
        return found

    return read


def list_sanctions(
    conn: Connection, conversation_id: str, now: datetime, *, user_id: str | None = None, in_force_only: bool = True
) -> list[Sanction]:
    """A conversation's sanctions (optionally one member's), newest first."""
    query = select(sanctions).where(sanctions.c.conversation_id == conversation_id)
    if user_id is not None:
        query = query.where(sanctions.c.user_id == user_id)
    if in_force_only:
        query = query.where(*_in_force(now))
    rows = conn.execute(query.order_by(sanctions.c.created_at.desc(), sanctions.c.id.desc()))
    return [_sanction(r) for r in rows]


def revoke_in_force(conn: Connection, conversation_id: str, user_id: str, kind: str, now: datetime) -> None:
    """End the member's sanctions of this kind in force (a new decision replaces them)."""
    conn.execute(
        update(sanctions)
        .where(
            sanctions.c.conversation_id == conversation_id,
            sanctions.c.user_id == user_id,
            sanctions.c.kind == kind,
            *_in_force(now),
        )
        .values(revoked_at=now)
    )


def revoke_sanction(conn: Connection, sanction_id: str, now: datetime) -> None:
    conn.execute(
        update(sanctions).where(sanctions.c.id == sanction_id, sanctions.c.revoked_at.is_(None)).values(revoked_at=now)
    )
