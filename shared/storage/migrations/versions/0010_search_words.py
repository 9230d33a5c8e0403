"""messages.search_document: the tsvector of the words Python found (PostgreSQL)

Until 0009 PostgreSQL's parser split the text it indexed (`to_tsvector('simple', content)`) and
the query's words (`to_tsquery`), and it splits the same characters differently by context:
"52e727bea5b4" is one word inside "secret-content-52e727bea5b4" but a number ("52e727") and a
word ("bea5b4") alone, so a search for a word of a message could miss it. Since 0010 both sides
are split in Python (`shared.storage.search.words`) and PostgreSQL is given the words themselves
(`array_to_tsvector`, a `tsquery` cast). This migration indexes the stored messages again that
way, in batches; downgrading indexes them with `to_tsvector` again. SQLite: nothing (FTS5 splits
the text and the query alike).

The splitting is written out here, not imported: a migration keeps doing what it did when it
was written, whatever the code becomes.

Measured: 100,000 messages in 5.8 s (about 60 us a message, a durable PostgreSQL on the 2-core
development machine), so 10 M messages take about 10 minutes, within the migration job's 15
(terraform/run.tf, `google_cloud_run_v2_job.migrate`); a larger store needs a longer timeout.

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000
_WORD = re.compile(r"[^\W_]+")
MAX_WORD_CHARS = 100


def _words(content: str) -> str | None:
    found = dict.fromkeys(word[:MAX_WORD_CHARS] for word in _WORD.findall(content.lower()))
    return " ".join(found) if found else None


def _text(content: str) -> str | None:
    return content.replace("\x00", " ")


def _reindex(document: str, indexed: Callable[[str], str | None]) -> None:
    """Every indexed message (plaintext, not deleted: the others have no document), by id."""
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    read = sa.text(
        "SELECT id, content FROM messages WHERE search_document IS NOT NULL AND id > :after ORDER BY id LIMIT :n"
    )
    write = sa.text(f"UPDATE messages SET search_document = {document} WHERE id = :id")
    after = ""
    while rows := bind.execute(read, {"after": after, "n": BATCH}).all():
        bind.execute(write, [{"id": row.id, "text": indexed(bytes(row.content).decode())} for row in rows])
        after = rows[-1].id


def upgrade() -> None:
    _reindex("array_to_tsvector(string_to_array(:text, ' '))", _words)


def downgrade() -> None:
    _reindex("to_tsvector('simple'::regconfig, :text)", _text)
