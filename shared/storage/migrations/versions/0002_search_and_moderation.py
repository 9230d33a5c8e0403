"""search index and moderation columns

Message search: `message_search` (one row per plaintext message; `document` is a tsvector
with a GIN index on PostgreSQL, the text itself on SQLite, where the FTS5 table
`message_search_fts` indexes it, kept in step by triggers) and `message_search_tokens` (the
client's blind tokens of E2E messages, matched exactly). Reports get the evidence (the reported
message as it was), the moderator's action, note and the sanction the action applied.

Written by hand; runs on PostgreSQL 15 and SQLite (FTS5).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import shared.storage.types

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.String(length=36)

# External-content FTS5: the text lives once, in message_search; the FTS table holds only the
# index, addressed by message_search.id (an INTEGER PRIMARY KEY, i.e. the stable rowid).
SQLITE_FTS = [
    "CREATE VIRTUAL TABLE message_search_fts USING fts5("
    "document, content='message_search', content_rowid='id', tokenize='unicode61 remove_diacritics 0')",
    "CREATE TRIGGER message_search_ai AFTER INSERT ON message_search BEGIN "
    "INSERT INTO message_search_fts(rowid, document) VALUES (new.id, new.document); END",
    "CREATE TRIGGER message_search_ad AFTER DELETE ON message_search BEGIN "
    "INSERT INTO message_search_fts(message_search_fts, rowid, document) VALUES ('delete', old.id, old.document); "
    "END",
    "CREATE TRIGGER message_search_au AFTER UPDATE ON message_search BEGIN "
    "INSERT INTO message_search_fts(message_search_fts, rowid, document) VALUES ('delete', old.id, old.document); "
    "INSERT INTO message_search_fts(rowid, document) VALUES (new.id, new.document); END",
]


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    document = postgresql.TSVECTOR() if postgres else sa.Text()
    op.create_table(
        "message_search",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("message_id", UUID, nullable=False),
        sa.Column("conversation_id", UUID, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.Column("document", document, nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_message_search_message_id_messages", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_message_search"),
        sa.UniqueConstraint("message_id", name="uq_message_search_message_id"),
    )
    op.create_index("ix_message_search_conversation_id", "message_search", ["conversation_id"])
    if postgres:
        op.create_index("ix_message_search_document", "message_search", ["document"], postgresql_using="gin")
    else:
        for statement in SQLITE_FTS:
            op.execute(statement)

    op.create_table(
        "message_search_tokens",
        sa.Column("message_id", UUID, nullable=False),
        sa.Column("token", sa.String(length=256), nullable=False),
        sa.Column("conversation_id", UUID, nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"], ["messages.id"], name="fk_message_search_tokens_message_id_messages", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("message_id", "token", name="pk_message_search_tokens"),
    )
    op.create_index(
        "ix_message_search_tokens_token_conversation_id", "message_search_tokens", ["token", "conversation_id"]
    )

    with op.batch_alter_table("reports") as batch:
        batch.add_column(sa.Column("evidence", shared.storage.types.JSONText(), nullable=True))
        batch.add_column(sa.Column("action", sa.String(length=20), nullable=True))
        batch.add_column(sa.Column("note", sa.Text(), nullable=True))
        batch.add_column(sa.Column("sanction_id", UUID, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("reports") as batch:
        batch.drop_column("sanction_id")
        batch.drop_column("note")
        batch.drop_column("action")
        batch.drop_column("evidence")
    op.drop_index("ix_message_search_tokens_token_conversation_id", table_name="message_search_tokens")
    op.drop_table("message_search_tokens")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index("ix_message_search_document", table_name="message_search")
    else:
        for name in ("message_search_au", "message_search_ad", "message_search_ai"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
        op.execute("DROP TABLE IF EXISTS message_search_fts")
    op.drop_index("ix_message_search_conversation_id", table_name="message_search")
    op.drop_table("message_search")
