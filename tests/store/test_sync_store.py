"""The /sync change feed's queries (shared/storage/sync.py) on both backends: what a user's pages
hold, compared with the feed's definition applied row by row, and (PostgreSQL) that they read
index ranges, not the whole outbox."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, Engine, delete, insert

from shared.storage import sync
from shared.storage.schema import conversations, event_targets, events, members
from tests.support import new_id

NOW = datetime(2026, 12, 7, tzinfo=UTC)
CONVERSATIONS = [new_id() for _ in range(4)]
ME, OTHER = new_id(), new_id()


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = sa.create_engine(store_url)
    yield engine
    engine.dispose()


@dataclass(frozen=True)
class Written:
    conversation: int | None  # index into CONVERSATIONS
    conversation_wide: bool
    targets: tuple[str, ...]
    txid: int  # below the horizon on PostgreSQL (a transaction long finished); 0 on SQLite


written = st.builds(
    Written,
    conversation=st.none() | st.integers(0, len(CONVERSATIONS) - 1),
    conversation_wide=st.booleans(),
    targets=st.lists(st.sampled_from([ME, OTHER]), unique=True, max_size=2).map(tuple),
    txid=st.integers(1, 4),
)


def _store(conn: Connection, membership: dict[int, bool], outbox: list[Written]) -> None:
    for table in (event_targets, events, members, conversations):
        conn.execute(delete(table))
    for conversation_id in CONVERSATIONS:
        conn.execute(
            insert(conversations).values(
                id=conversation_id, type="group", metadata={}, created_by=OTHER, created_at=NOW, updated_at=NOW
            )
        )
    for index, active in membership.items():
        conn.execute(
            insert(members).values(
                conversation_id=CONVERSATIONS[index],
                user_id=ME,
                role="member",
                joined_at=NOW,
                is_active=active,
                updated_at=NOW,
            )
        )
    postgres = conn.dialect.name == "postgresql"
    for event in outbox:
        cid: str | None = None if event.conversation is None else CONVERSATIONS[event.conversation]
        scope = "conversation" if event.conversation_wide and cid is not None else "user"
        row_id = conn.execute(
            insert(events)
            .values(
                event_id=new_id(),
                name="test",
                conversation_id=cid,
                topics=[],
                payload={},
                scope=scope,
                txid=event.txid if postgres else 0,
                created_at=NOW,
            )
            .returning(events.c.id)
        ).scalar_one()
        for user in event.targets:
            conn.execute(
                insert(event_targets).values(user_id=user, event_id=row_id, txid=event.txid if postgres else 0)
            )


def _defined(conn: Connection) -> list[sync.Cursor]:
    """The feed by its definition: events of a conversation ME is an active member of, or
    targeted at ME; in (txid, id) order."""
    mine = {
        r.conversation_id for r in conn.execute(sa.select(members).where(members.c.user_id == ME, members.c.is_active))
    }
    targeted = {r.event_id for r in conn.execute(sa.select(event_targets).where(event_targets.c.user_id == ME))}
    rows = conn.execute(sa.select(events)).all()
    heard = [r for r in rows if (r.scope == "conversation" and r.conversation_id in mine) or r.id in targeted]
    return sorted((int(r.txid), int(r.id)) for r in heard)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    membership=st.dictionaries(st.integers(0, len(CONVERSATIONS) - 1), st.booleans()),
    outbox=st.lists(written, max_size=30),
    limit=st.integers(1, 7),
    start=st.integers(0, 30),
)
def test_pages_hold_exactly_the_users_events_in_cursor_order(
    engine: Engine, membership: dict[int, bool], outbox: list[Written], limit: int, start: int
) -> None:
    with engine.begin() as conn:
        _store(conn, membership, outbox)
    with engine.connect() as conn:
        expected = _defined(conn)
        first = expected[start - 1] if 0 < start <= len(expected) else (0, 0)  # also a cursor mid-feed
        cursor, read = first, []
        while True:
            page, more = sync.changes_for(conn, ME, cursor, limit)
            assert len(page) == limit if more else len(page) <= limit
            read += [c.cursor for c in page]
            if not more:
                break
            cursor = page[-1].cursor
        assert read == [c for c in expected if c > first]
        # the head covers every event stored: nothing stored is after it
        head = sync.head(conn)
        assert sync.changes_for(conn, ME, head, limit)[0] == []
        assert all(c <= head for c in expected)


def test_head_comes_before_every_event_written_after_it(engine: Engine) -> None:
    with engine.begin() as conn:
        _store(conn, {0: True}, [Written(0, True, (), 1)])
    with engine.connect() as conn:
        head = sync.head(conn)
    with engine.begin() as conn:  # a later transaction, with its own txid on PostgreSQL
        postgres = conn.dialect.name == "postgresql"
        txid: object = sa.literal_column("pg_current_xact_id()::text::bigint") if postgres else 0
        conn.execute(
            insert(events).values(
                event_id=new_id(),
                name="later",
                conversation_id=CONVERSATIONS[0],
                topics=[],
                payload={},
                scope="conversation",
                txid=txid,
                created_at=NOW,
            )
        )
    with engine.connect() as conn:
        assert [c.name for c in sync.changes_for(conn, ME, head, 10)[0]] == ["later"]


def test_sync_reads_index_ranges_not_the_outbox(engine: Engine) -> None:
    """With 40,000 events over 400 conversations and statistics up to date, the plans of a
    user's page and of the head touch `events` only through indexes (a regression to "my
    conversations OR targeted at me" in one scan, or to sorting for the head, shows a Seq Scan)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner")
    mine = ", ".join(f"'{cid}'" for cid in CONVERSATIONS)
    fill = f"""
        INSERT INTO events (event_id, name, conversation_id, seq, topics, payload, scope, txid, created_at)
        SELECT gen_random_uuid()::text, 'new_message',
               CASE WHEN mod(g, 400) < 4 THEN (ARRAY[{mine}])[mod(g, 400) + 1] ELSE 'c' || mod(g, 400) END,
               g / 400, '[]', '{{"message": "' || repeat('x', 100) || '"}}', 'conversation', 1 + g / 100, now()
        FROM generate_series(0, 39999) g
    """
    with engine.begin() as conn:
        _store(conn, {0: True, 1: True}, [Written(None, False, (ME,), 1)])
        conn.exec_driver_sql(fill)
        conn.exec_driver_sql("ANALYZE events")
        conn.exec_driver_sql("ANALYZE event_targets")
        conn.exec_driver_sql("ANALYZE conversation_members")
    with engine.connect() as conn:
        executed: list[tuple[str, Any]] = []
        sa.event.listen(conn, "before_cursor_execute", lambda *args: executed.append((args[2], args[3])))

        def plan_of_last_statement() -> str:
            statement, parameters = executed[-1]
            return "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars())

        for after in [(0, 0), (300, 0)]:
            sync.changes_for(conn, ME, after, 100)
            plan = plan_of_last_statement()
            assert "Seq Scan on events" not in plan, plan
        sync.head(conn)
        plan = plan_of_last_statement()
        assert "Seq Scan" not in plan and "Sort" not in plan, plan


def test_sync_uses_the_partial_index_in_a_generic_plan(engine: Engine) -> None:
    """`(conversation_id, txid, id)` holds only conversation-scoped events (migration 0008). A
    statement prepared by the driver can be planned once for any parameters (a generic plan),
    which may use a partial index only if the statement itself implies its predicate: /sync
    writes `scope = 'conversation'` as a literal (a bound parameter there makes this plan read
    the whole outbox)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's generic plans")
    fill = f"""
        INSERT INTO events (event_id, name, conversation_id, seq, topics, payload, scope, txid, created_at)
        SELECT gen_random_uuid()::text, 'new_message', 'c' || mod(g, 400), g / 400, '[]', '{{}}',
               'conversation', 1 + g / 100, now()
        FROM generate_series(0, 19999) g
        UNION ALL
        SELECT gen_random_uuid()::text, 'new_message', '{CONVERSATIONS[0]}', g, '[]', '{{}}', 'conversation', 1, now()
        FROM generate_series(1, 20) g
    """
    with engine.begin() as conn:
        _store(conn, {0: True}, [])
        conn.exec_driver_sql(fill)
        conn.exec_driver_sql("ANALYZE events")
    with engine.connect() as conn:
        executed: list[tuple[str, Any]] = []
        sa.event.listen(conn, "before_cursor_execute", lambda *args: executed.append((args[2], args[3])))
        sync.changes_for(conn, ME, (0, 0), 100)
        statement, parameters = executed[-1]
        names: list[str] = []
        for name in re.findall(r"%\((\w+)\)s", statement):
            if name not in names:
                names.append(name)
        numbered = re.sub(r"%\((\w+)\)s", lambda m: f"${names.index(m.group(1)) + 1}", statement)
        conn.exec_driver_sql(f"PREPARE page AS {numbered}")
        conn.exec_driver_sql("SET plan_cache_mode = force_generic_plan")
        values = [parameters[name] for name in names]
        assert all(isinstance(v, int | str) and "'" not in str(v) for v in values), values
        arguments = ", ".join(str(v) if isinstance(v, int) else f"'{v}'" for v in values)  # EXECUTE's are untyped
        plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN EXECUTE page({arguments})").scalars())
        conn.rollback()
    assert "ix_events_conversation_id_txid_id" in plan and "Seq Scan on events" not in plan, plan
