"""The batch's duplicate check (`shared.storage.messages.find_by_client_randoms`) looks each key
up in the `(conversation_id, sender_id, client_random)` index, whatever the table's size: while
`messages` was small (as in a benchmark), a plain join of the keys let PostgreSQL hash them
against a sequential scan of every message, at a cost that grew with each message stored."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy import Engine

from shared.storage import messages as msg_store

FILL = """
INSERT INTO conversations (id, type, metadata, created_by, created_at, updated_at, is_active, last_seq)
SELECT 'c' || i, 'direct', '{}', 'u' || i, now(), now(), true, 0 FROM generate_series(0, 63) i;
INSERT INTO messages (id, conversation_id, seq, sender_id, client_random, message_type, content, metadata,
                      sent_at, is_deleted, is_expired)
SELECT 'm' || g, 'c' || mod(g, 64), g / 64 + 1, 'u' || mod(g, 64), g, 'text', 'x'::bytea, '{}', now(), false, false
FROM generate_series(0, 3999) g;
ANALYZE messages;
"""


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    engine = sa.create_engine(store_url)
    yield engine
    engine.dispose()


def test_the_duplicate_check_reads_the_index_on_a_small_table(engine: Engine) -> None:
    if engine.dialect.name != "postgresql":
        pytest.skip("PostgreSQL's planner")
    with engine.begin() as conn:
        conn.exec_driver_sql(FILL)
    statement = msg_store._by_client_randoms(True).compile(dialect=engine.dialect)
    keys = [(f"c{i}", f"u{i}", 10_000 + i) for i in range(64)]
    parameters = {
        "conversation_ids": [k[0] for k in keys],
        "sender_ids": [k[1] for k in keys],
        "client_randoms": [k[2] for k in keys],
        "since": datetime.now(UTC) - timedelta(hours=1),
    }
    with engine.connect() as conn:
        plan = "\n".join(conn.exec_driver_sql(f"EXPLAIN {statement}", parameters).scalars())
        found = msg_store.find_by_client_randoms(conn, {*keys, ("c1", "u1", 65)}, parameters["since"])
    assert "ix_messages_conversation_id_sender_id_client_random" in plan and "Seq Scan" not in plan, plan
    assert [(k, m.id) for k, m in found.items()] == [(("c1", "u1", 65), "m65")]  # what it finds is unchanged
