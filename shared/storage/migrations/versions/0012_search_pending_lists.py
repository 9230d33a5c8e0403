"""The search indexes clean their pending list every 512 kB instead of every 4 MB

A GIN index (`search_document`, `search_tokens`, PostgreSQL only) takes new entries into a
pending list and moves them into the index proper when the list passes
`gin_pending_list_limit` (4 MB by default), inside the INSERT that passed it. At 2,500 plaintext
messages a second that was an INSERT of ~55 ms every 10 s, holding up its whole group-commit
batch and every socket's latency with it: at 2,500 msgs/s the 10-s stretches set B1's p99
(docs/performance.md, issue 16). At 512 kB the same work comes in pieces an eighth the size (no
statement over 25 ms in the same run); turning the pending list off (`fastupdate = off`) cost
PostgreSQL ~8 % more CPU per message instead.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = ("ix_messages_search_document", "ix_messages_search_tokens")
PENDING_LIST_KB = 512


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for index in INDEXES:
            op.execute(f"ALTER INDEX {index} SET (gin_pending_list_limit = {PENDING_LIST_KB})")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for index in INDEXES:
            op.execute(f"ALTER INDEX {index} RESET (gin_pending_list_limit)")
