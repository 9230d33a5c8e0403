"""The outbox's unpublished events: a small table of their ids, not a column of every event

Until 0010, an event was written with `published_at` NULL and marked once the bus had it (an
UPDATE of the event's row). `published_at` is in the predicate of `ix_events_unpublished`, so
PostgreSQL could never update it in place (HOT): each mark wrote the whole row again (its
payload inline) and an entry in each of the table's five indexes. Where the bus is not in the
process (Pub/Sub; the local broker of `dev --workers N`) every event paid that: issue 16 measured
159 us of PostgreSQL CPU and 1.5 kB of WAL per message for the marks alone, more than the rest
of the send. Now an event that waits for the bus has a row in `unpublished_events` (its id and
when it was written, in the statement that writes it), and marking it published deletes that row.

Stored events keep their state: those with `published_at` NULL get a row. Downgrading sets
`published_at` back (to `created_at` for every event without a row).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.storage.types import UTCDateTime

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

AutoId = sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "unpublished_events",
        sa.Column("event_id", AutoId, primary_key=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.execute(
        "INSERT INTO unpublished_events (event_id, created_at) "
        "SELECT id, created_at FROM events WHERE published_at IS NULL"
    )
    op.drop_index("ix_events_unpublished", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("published_at")


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("published_at", UTCDateTime))
    op.execute(
        "UPDATE events SET published_at = created_at "
        "WHERE id NOT IN (SELECT event_id FROM unpublished_events)"
    )
    op.create_index(
        "ix_events_unpublished",
        "events",
        ["id"],
        postgresql_where=sa.text("published_at IS NULL"),
        sqlite_where=sa.text("published_at IS NULL"),
    )
    op.drop_table("unpublished_events")
