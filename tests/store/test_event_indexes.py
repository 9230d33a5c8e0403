"""The outbox's partial indexes (migration 0008), on both backends: `(conversation_id, txid, id)`
holds conversation-scoped events only, `(conversation_id, seq)` events with a seq only; the
migration goes down and up again, and what /sync and the scrub read is the same either way.
Its payloads compressed with lz4 on PostgreSQL (migration 0009)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alembic import command
from sqlalchemy import create_engine, func, select

from shared.app import conversations, messages, sync
from shared.app.services import Services
from shared.bootstrap import build_services
from shared.domain.models import Actor, Event, NewMessage
from shared.storage import outbox
from shared.storage.migrate import alembic_config
from shared.storage.schema import events
from tests.support import client_random, make_settings, new_id

PARTIAL = {
    "ix_events_conversation_id_txid_id": "scope = 'conversation'",
    "ix_events_conversation_id_seq": "seq IS NOT NULL",
}


@pytest.fixture
def services(store_url: str, key_path: str) -> Iterator[Services]:
    svc = build_services(make_settings(store_url, key_path))
    yield svc
    svc.close()


def _predicates(url: str) -> dict[str, str | None]:
    """Each index of `events` and its WHERE clause as the database reports it (None: not partial)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                query = "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'events'"
            else:
                query = "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'"
            rows = conn.exec_driver_sql(query).all()
    finally:
        engine.dispose()
    return {name: sql.split(" WHERE ", 1)[1] if sql and " WHERE " in sql else None for name, sql in rows}


def _normalised(predicate: str | None) -> str | None:
    """PostgreSQL prints `((scope)::text = 'conversation'::text)`; SQLite what it was given."""
    if predicate is None:
        return None
    for noise in ("::text", "(", ")"):
        predicate = predicate.replace(noise, "")
    return predicate


def test_migration_0008_makes_the_conversation_indexes_partial_and_back(services: Services, store_url: str) -> None:
    alice, bob = Actor(new_id()), Actor(new_id())
    cid = conversations.create_direct(services, alice, bob.user_id).view["id"]
    new = NewMessage(content="before", message_type="text", client_random=client_random())
    sent = messages.send_message(services, alice, cid, new).message
    start = sync.sync(services, bob, None, 100).next_cursor
    assert {k: _normalised(_predicates(store_url)[k]) for k in PARTIAL} == PARTIAL
    config = alembic_config(store_url)
    command.downgrade(config, "0007")
    try:
        assert {k: _predicates(store_url)[k] for k in PARTIAL} == dict.fromkeys(PARTIAL)
    finally:
        command.upgrade(config, "head")
    assert {k: _normalised(_predicates(store_url)[k]) for k in PARTIAL} == PARTIAL
    services.db.dispose()  # connections opened before the indexes changed
    later = NewMessage(content="after", message_type="text", client_random=client_random())
    messages.send_message(services, alice, cid, later)
    page = sync.sync(services, bob, start, 100)
    assert [c["event"] for c in page.changes] == ["new_message"]
    with services.db.transaction() as conn:  # the scrub still finds the message's copies
        outbox.scrub_message(conn, cid, sent.seq, {"id": sent.id, "is_deleted": True})
        payloads = conn.execute(
            select(events.c.payload).where(events.c.conversation_id == cid, events.c.seq == sent.seq)
        ).scalars()
        assert [p["message"] for p in payloads] == [{"id": sent.id, "is_deleted": True}]


def _payload_compression(url: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            query = (
                "SELECT attcompression FROM pg_attribute WHERE attrelid = 'events'::regclass AND attname = 'payload'"
            )
            return str(conn.exec_driver_sql(query).scalar_one())
    finally:
        engine.dispose()


def test_migration_0009_compresses_event_payloads_with_lz4_and_back(services: Services, store_url: str) -> None:
    """A large payload (a push planner pass lists hundreds of messages) is stored lz4-compressed
    after 0009 and reads back the same; the downgrade returns the column to the default."""
    if not store_url.startswith("postgresql"):
        pytest.skip("PostgreSQL's TOAST compression")
    assert _payload_compression(store_url) == "l"
    config = alembic_config(store_url)
    command.downgrade(config, "0008")
    try:
        assert _payload_compression(store_url) == ""
    finally:
        command.upgrade(config, "head")
    assert _payload_compression(store_url) == "l"
    services.db.dispose()  # connections opened before the column changed
    listing = {"messages": [{"id": new_id(), "recipient_ids": [new_id() for _ in range(3)]} for _ in range(300)]}
    with services.db.transaction() as conn:
        written = outbox.append(conn, Event("message_recipients", listing, ()), services.clock())
    with services.db.transaction() as conn:
        row = conn.execute(
            select(events.c.payload, func.pg_column_compression(events.c.payload)).where(
                events.c.id == written.position
            )
        ).one()
    assert row[0] == listing and row[1] == "lz4"
