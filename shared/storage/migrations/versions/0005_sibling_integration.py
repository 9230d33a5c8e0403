"""sibling integration: consumed events (idempotency), outbox cursors, the notification queue

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from shared.storage.types import JSONText, UTCDateTime

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOTIFIABLE = "name IN ('new_message', 'conversation_read')"


def upgrade() -> None:
    op.create_table(
        "inbound_events",
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_inbound_events")),
    )
    op.create_index("ix_inbound_events_received_at", "inbound_events", ["received_at"])
    op.create_table(
        "outbox_cursors",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("txid", sa.BigInteger(), nullable=False),
        sa.Column("event_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_outbox_cursors")),
    )
    # the notification worker starts from now: messages stored before this migration are not pushed
    op.execute(
        "INSERT INTO outbox_cursors (name, txid, event_id) "
        "SELECT 'notifications', COALESCE(MAX(txid), 0), COALESCE(MAX(id), 0) FROM events"
    )
    op.create_table(
        "notification_queue",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("dedupe_key", sa.String(80), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("payload", JSONText(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notification_queue")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_notification_queue_dedupe_key")),
    )
    op.create_index(
        "ix_events_notifiable",
        "events",
        ["txid", "id"],
        postgresql_where=sa.text(_NOTIFIABLE),
        sqlite_where=sa.text(_NOTIFIABLE),
    )


def downgrade() -> None:
    op.drop_index("ix_events_notifiable", table_name="events")
    op.drop_table("notification_queue")
    op.drop_table("outbox_cursors")
    op.drop_index("ix_inbound_events_received_at", table_name="inbound_events")
    op.drop_table("inbound_events")
