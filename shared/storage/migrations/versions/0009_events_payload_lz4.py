"""events.payload compressed with lz4 instead of pglz (PostgreSQL)

Issue 16: the push planner writes one `message_recipients` event per pass listing every message
it planned (hundreds), a payload of tens of kilobytes that PostgreSQL compresses into TOAST on
INSERT. With pglz that cost about as much CPU as a tenth of the messages it listed (B1: 15 us
of execution a message, ~3 ms a row; bench.pg_cost: PostgreSQL backends 92 -> 84 us/msg with
lz4); lz4 compresses as well for this JSON at a fraction of the CPU. A message's own event
(under 2 kB) is never compressed either way.

Values already stored keep pglz (both read the same); only new ones are lz4. A server built
without lz4 keeps pglz: the migration says so in a warning and goes on. SQLite: nothing.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger(__name__)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    try:
        with bind.begin_nested():
            bind.exec_driver_sql("ALTER TABLE events ALTER COLUMN payload SET COMPRESSION lz4")
    except sa.exc.DBAPIError as error:  # built without lz4 ("compression method lz4 not supported")
        log.warning("events.payload stays compressed with pglz: %s", error.orig)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE events ALTER COLUMN payload SET COMPRESSION default")
