"""reports.status in the Whispr client's values

`resolved` becomes `resolved_action` or `resolved_dismissed` (from the stored `resolution`),
and the column widens to hold them. `pending` stays; `under_review` is new and unused so far.
Downgrade folds both back into `resolved` (and `under_review` into `pending`).

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.alter_column("status", type_=sa.String(20), existing_type=sa.String(12), existing_nullable=False)
    op.execute(
        "UPDATE reports SET status = CASE WHEN resolution = 'dismissed' THEN 'resolved_dismissed' "
        "ELSE 'resolved_action' END WHERE status = 'resolved'"
    )


def downgrade() -> None:
    op.execute("UPDATE reports SET status = 'resolved' WHERE status IN ('resolved_action', 'resolved_dismissed')")
    op.execute("UPDATE reports SET status = 'pending' WHERE status = 'under_review'")
    with op.batch_alter_table("reports") as batch:
        batch.alter_column("status", type_=sa.String(12), existing_type=sa.String(20), existing_nullable=False)
