"""EXPLAIN (ANALYZE, BUFFERS) of /sync's statements on a filled outbox (docs/performance.md,
issue 16): the statements `shared.storage.sync` issues (a page of `changes_for` from the start
and from a recent cursor, and `head`), for a user in 4 conversations and one in 200.

    .venv/bin/python -m bench.sync_explain                 # a throwaway cluster, filled, then removed
    .venv/bin/python -m bench.sync_explain --url URL       # a migrated database (filled if empty)

The fill (in SQL, a few seconds): 2,000 conversations, 1,000 users two to a conversation,
120,000 `new_message` events round-robin over the conversations (200 per txid, as batches
write them) and 6,000 events targeted at one user each: 126,000 events. The statements are
recorded as SQLAlchemy sends them and explained with the same parameters; each is run twice
and the second (warm) plan printed. To explain another tree's statements, run this file with
that tree first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa

from shared.config import Settings
from shared.devtools.postgres import start_cluster
from shared.storage import sync
from shared.storage.migrate import upgrade

# txids below 3 + 126,000 / 200 must be finished transactions: 1,000 are used up first
USE_XIDS = "DO $$ BEGIN FOR i IN 1..1000 LOOP PERFORM pg_current_xact_id(); COMMIT; END LOOP; END $$"
FILL = """
INSERT INTO conversations (id, type, metadata, created_by, created_at, updated_at, is_active, last_seq)
SELECT md5('c' || i)::uuid, 'group', '{}', md5('u' || mod(i, 1000))::uuid, now(), now(), true, 0
FROM generate_series(0, 1999) i;
INSERT INTO conversation_members (conversation_id, user_id, role, joined_at, is_active, last_read_seq,
  last_delivered_seq, notifications_enabled, show_read_receipts, show_typing, is_pinned, is_archived, updated_at)
SELECT DISTINCT md5('c' || i)::uuid, u, 'member', now(), true, 0, 0, true, true, true, false, false, now()
FROM generate_series(0, 1999) i,
  LATERAL (VALUES (md5('u' || mod(i, 1000))::uuid), (md5('u' || mod(i * 7 + 1, 1000))::uuid),
                  (CASE WHEN mod(i, 10) = 0 THEN md5('heavy')::uuid END)) m(u)
WHERE u IS NOT NULL;
INSERT INTO events (event_id, name, conversation_id, seq, topics, payload, scope, txid, created_at)
SELECT gen_random_uuid(), 'new_message', md5('c' || mod(g, 2000))::uuid, g / 2000 + 1,
  '["conversation:' || md5('c' || mod(g, 2000))::uuid || '"]',
  '{"message": {"id": "' || gen_random_uuid() || '", "content": "' || repeat('x', 200) || '"}}',
  'conversation', 3 + g / 200, now()
FROM generate_series(0, 119999) g;
WITH t AS (
  INSERT INTO events (event_id, name, conversation_id, seq, topics, payload, scope, txid, created_at)
  SELECT gen_random_uuid(), 'settings_updated', NULL, NULL, '["user:' || md5('u' || mod(g, 1000))::uuid || '"]',
    '{"user": "' || md5('u' || mod(g, 1000))::uuid || '"}', 'user', 3 + g / 10, now()
  FROM generate_series(0, 5999) g
  RETURNING id, txid, payload
)
INSERT INTO event_targets (user_id, event_id, txid) SELECT (payload::json->>'user')::uuid, id, txid FROM t;
ANALYZE;
"""

USERS = {"light (4 conversations)": "u0", "heavy (200 conversations)": "heavy"}


def fill(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        if conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one():
            return
    raw = engine.raw_connection()  # the driver's own: the fill's `%` and `$$` go to the server untouched
    try:
        driver = raw.driver_connection
        assert driver is not None
        driver.autocommit = True  # the DO block commits
        driver.execute(USE_XIDS)
        driver.execute(FILL)
    finally:
        raw.close()


def explain(engine: sa.Engine, label: str, call: Callable[[sa.Connection], Any]) -> None:
    executed: list[tuple[str, Any]] = []
    with engine.connect() as conn:
        sa.event.listen(conn, "before_cursor_execute", lambda *args: executed.append((args[2], args[3])))
        for _ in range(2):  # the second run is the warm one
            result = call(conn)
            statement, parameters = executed[-1]
            plan = conn.exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {statement}", parameters).scalars().all()
        conn.rollback()
    print(f"=== {label}: {result}")
    print("\n".join(plan), flush=True)


def page(user_id: str, after: sync.Cursor) -> Callable[[sa.Connection], Any]:
    def call(conn: sa.Connection) -> Any:
        changes, more = sync.changes_for(conn, user_id, after, 100)
        return f"{len(changes)} changes, has_more={more}"

    return call


def report(url: str) -> None:
    engine = sa.create_engine(url)
    try:
        fill(engine)
        with engine.connect() as conn:
            print("events:", conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one())
        for label, name in USERS.items():
            with engine.connect() as conn:
                user_id = conn.execute(sa.text(f"SELECT md5('{name}')::uuid::text")).scalar_one()
            explain(engine, f"{label}: changes_for since 0, limit 100", page(user_id, (0, 0)))
            explain(engine, f"{label}: changes_for since (590, 0), limit 100", page(user_id, (590, 0)))
        explain(engine, "head", sync.head)
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", help="a migrated PostgreSQL database (default: a throwaway cluster)")
    args = parser.parse_args()
    if args.url:
        report(args.url)
        return
    cluster = start_cluster()
    try:
        with tempfile.TemporaryDirectory() as keys:
            upgrade(Settings(database_url=cluster.url, dev_key_path=f"{keys}/dev.pem"))
        report(cluster.url)
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
