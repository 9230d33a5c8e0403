"""events: the conversation and scrub indexes hold only the events their readers look for

Issue 16: every event paid an entry in `ix_events_conversation_id_txid_id` and
`ix_events_conversation_id_seq`, whoever reads it. `/sync`'s per-conversation range scan
(`shared.storage.sync.changes_query`) reads only conversation-scoped events (user-scoped ones
are found through `event_targets`), and the scrub of a deleted or expired message
(`shared.storage.outbox.scrub_message`) only events that carry the message's `seq`. So both
become partial: `WHERE scope = 'conversation'` and `WHERE seq IS NOT NULL`. The push planner's
`message_recipients` (one per message, scope 'user', no seq) is in neither any more.

`/sync` writes `scope = 'conversation'` as a literal in its statement: a bound parameter would
hide the predicate from PostgreSQL's generic plans (and from SQLite's planner), which could then
not use the index. `seq = :seq` implies `seq IS NOT NULL` for any value, so the scrub's
statement can keep its parameters.

Same names, same columns; the indexes are rebuilt (a write lock on `events` while they are).
Runs on PostgreSQL 15 and SQLite.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# index: (columns, the predicate it gets)
PARTIAL = {
    "ix_events_conversation_id_txid_id": (["conversation_id", "txid", "id"], "scope = 'conversation'"),
    "ix_events_conversation_id_seq": (["conversation_id", "seq"], "seq IS NOT NULL"),
}


def upgrade() -> None:
    for name, (columns, where) in PARTIAL.items():
        op.drop_index(name, table_name="events")
        op.create_index(
            name, "events", columns, postgresql_where=sa.text(where), sqlite_where=sa.text(where)
        )


def downgrade() -> None:
    for name, (columns, _) in PARTIAL.items():
        op.drop_index(name, table_name="events")
        op.create_index(name, "events", columns)
