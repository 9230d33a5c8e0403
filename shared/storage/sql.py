"""SQL building blocks whose best form differs between PostgreSQL and SQLite.

The hot paths (group commit, the outbox) run statements over a batch of ids. Written the
obvious way (`IN (:a, :b, ...)`, a multi-row `VALUES`), every batch size gives a different
statement text with one parameter per value: psycopg converts such texts in pure Python on
every execute (its cache stops at 4 KiB texts), and PostgreSQL plans each one afresh. The forms
here keep one text whatever the count, so it is converted once and prepared by the server.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, Connection, Table, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY


def one_of(conn: Connection, column: ColumnElement[Any], values: Collection[Any]) -> ColumnElement[bool]:
    """`column IN values`; on PostgreSQL `column = ANY(:array)`, one parameter for any count."""
    if conn.dialect.name == "postgresql":
        return column == any_(bindparam(None, list(values), type_=ARRAY(column.type)))
    return column.in_(values)


def next_ids(conn: Connection, table: Table, count: int) -> list[int] | None:
    """`count` values of `table.id`'s sequence in one query, for inserting rows with known ids by
    executemany (one round trip in psycopg's pipeline) instead of a multi-row INSERT ...
    RETURNING. None where there is no sequence (SQLite): insert and read the ids back instead."""
    if conn.dialect.name != "postgresql" or count <= 0:
        return None
    sequence = func.pg_get_serial_sequence(table.name, "id")
    query = select(func.nextval(sequence).cast(BigInteger)).select_from(func.generate_series(1, bindparam("n")))
    return sorted(int(v) for v in conn.execute(query, {"n": count}).scalars())
