"""events: index by (conversation_id, seq), to scrub purged message copies from the change log

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_events_conversation_id_seq", "events", ["conversation_id", "seq"])


def downgrade() -> None:
    op.drop_index("ix_events_conversation_id_seq", table_name="events")
