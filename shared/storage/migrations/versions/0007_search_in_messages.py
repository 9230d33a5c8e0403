"""search index in the messages row

The search index moves into `messages` (issue 16: a message was a second row, three more
b-tree entries and a foreign-key check in PostgreSQL, written from Python): `search_document`
(PostgreSQL: the tsvector, GIN-indexed where not NULL; SQLite: the text) and `search_tokens`
(the client's blind tokens of E2E messages; PostgreSQL: a text array, GIN-indexed, matched with
`@>`; SQLite: a JSON list). Both are written by the INSERT that stores the message.

PostgreSQL drops `message_search` and `message_search_tokens` once their content is copied.
SQLite keeps `message_search` and its FTS5 index, now fed by triggers on `messages` (FTS5
needs a stable integer rowid, which `messages` has not), and drops `message_search_tokens`.

Written by hand; runs on PostgreSQL 15 and SQLite (FTS5).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UUID = sa.String(length=36)

# SQLite: messages.search_document -> message_search -> message_search_fts (0002's triggers).
SQLITE_TRIGGERS = {
    "messages_search_ai": "CREATE TRIGGER messages_search_ai AFTER INSERT ON messages "
    "WHEN new.search_document IS NOT NULL BEGIN "
    "INSERT INTO message_search (message_id, conversation_id, seq, document) "
    "VALUES (new.id, new.conversation_id, new.seq, new.search_document); END",
    "messages_search_au": "CREATE TRIGGER messages_search_au AFTER UPDATE OF search_document ON messages BEGIN "
    "DELETE FROM message_search WHERE message_id = old.id; "
    "INSERT INTO message_search (message_id, conversation_id, seq, document) "
    "SELECT new.id, new.conversation_id, new.seq, new.search_document WHERE new.search_document IS NOT NULL; END",
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.add_column("messages", sa.Column("search_document", postgresql.TSVECTOR()))
        op.add_column("messages", sa.Column("search_tokens", postgresql.ARRAY(sa.String(256))))
        op.execute(
            "UPDATE messages m SET search_document = s.document FROM message_search s WHERE s.message_id = m.id"
        )
        op.execute(
            "UPDATE messages m SET search_tokens = t.tokens FROM "
            "(SELECT message_id, array_agg(token ORDER BY token) AS tokens FROM message_search_tokens "
            "GROUP BY message_id) t WHERE t.message_id = m.id"
        )
        for column in ("search_document", "search_tokens"):
            op.create_index(
                f"ix_messages_{column}",
                "messages",
                [column],
                postgresql_using="gin",
                postgresql_where=sa.text(f"{column} IS NOT NULL"),
            )
        op.drop_table("message_search_tokens")
        op.drop_table("message_search")
        return
    op.add_column("messages", sa.Column("search_document", sa.Text()))
    op.add_column("messages", sa.Column("search_tokens", sa.Text()))
    op.execute(
        "UPDATE messages SET search_document = "
        "(SELECT s.document FROM message_search s WHERE s.message_id = messages.id)"
    )
    op.execute(
        "UPDATE messages SET search_tokens = "
        "(SELECT json_group_array(t.token) FROM message_search_tokens t WHERE t.message_id = messages.id) "
        "WHERE id IN (SELECT message_id FROM message_search_tokens)"
    )
    for statement in SQLITE_TRIGGERS.values():
        op.execute(statement)
    op.drop_table("message_search_tokens")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
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
    if postgres:
        op.execute(
            "INSERT INTO message_search_tokens (message_id, token, conversation_id, seq) "
            "SELECT id, unnest(search_tokens), conversation_id, seq FROM messages WHERE search_tokens IS NOT NULL"
        )
        op.create_table(
            "message_search",
            sa.Column("id", sa.BigInteger(), autoincrement=True, nullable=False),
            sa.Column("message_id", UUID, nullable=False),
            sa.Column("conversation_id", UUID, nullable=False),
            sa.Column("seq", sa.BigInteger(), nullable=False),
            sa.Column("document", postgresql.TSVECTOR(), nullable=False),
            sa.ForeignKeyConstraint(
                ["message_id"], ["messages.id"], name="fk_message_search_message_id_messages", ondelete="CASCADE"
            ),
            sa.PrimaryKeyConstraint("id", name="pk_message_search"),
            sa.UniqueConstraint("message_id", name="uq_message_search_message_id"),
        )
        op.create_index("ix_message_search_conversation_id", "message_search", ["conversation_id"])
        op.create_index("ix_message_search_document", "message_search", ["document"], postgresql_using="gin")
        op.execute(
            "INSERT INTO message_search (message_id, conversation_id, seq, document) "
            "SELECT id, conversation_id, seq, search_document FROM messages WHERE search_document IS NOT NULL"
        )
        op.drop_index("ix_messages_search_tokens", table_name="messages")
        op.drop_index("ix_messages_search_document", table_name="messages")
    else:
        op.execute(
            "INSERT INTO message_search_tokens (message_id, token, conversation_id, seq) "
            "SELECT m.id, j.value, m.conversation_id, m.seq FROM messages m, json_each(m.search_tokens) j "
            "WHERE m.search_tokens IS NOT NULL"
        )
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("messages") as batch:
        batch.drop_column("search_tokens")
        batch.drop_column("search_document")
