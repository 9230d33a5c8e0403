"""SQL building blocks whose best form differs between PostgreSQL and SQLite.

The hot paths (group commit, the outbox) run statements over a batch of ids. Written the
obvious way (`IN (:a, :b, ...)`, a multi-row `VALUES`), every batch size gives a different
statement text with one parameter per value: psycopg converts such texts in pure Python on
every execute (its cache stops at 4 KiB texts), and PostgreSQL plans each one afresh. The forms
here keep one text whatever the count, so it is converted once and prepared by the server.

The hottest statements are also built once (`Prebuilt`) rather than on every call: SQLAlchemy
walks a statement to compute its cache key once per statement object, so a statement rebuilt on
each call pays for the building and the walk every time (about a fifth of a batch's CPU).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

from sqlalchemy import BigInteger, ColumnElement, Connection, Table, any_, bindparam, func, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.base import Executable

S = TypeVar("S", bound=Executable)


class Prebuilt(Generic[S]):
    """A statement built once for PostgreSQL and once for the other dialects, then reused; its
    parameters are bound by name when it is executed. `build(postgres)` makes it."""

    def __init__(self, build: Callable[[bool], S]):
        self._build = build
        self._built: dict[bool, S] = {}

    def __call__(self, conn: Connection) -> S:
        postgres = conn.dialect.name == "postgresql"
        statement = self._built.get(postgres)
        if statement is None:  # two threads may both build it: the same statement, harmless
            statement = self._built[postgres] = self._build(postgres)
        return statement


def any_of(postgres: bool, column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """`column IN :name`, the list given at execute: `column = ANY(:name)` on PostgreSQL (one
    array parameter), an expanding IN elsewhere."""
    if postgres:
        return column == any_(bindparam(name, type_=ARRAY(column.type)))
    return column.in_(bindparam(name, expanding=True))


def next_ids(conn: Connection, table: Table, count: int) -> list[int] | None:
    """`count` values of `table.id`'s sequence in one query, for inserting rows with known ids by
    executemany (one round trip in psycopg's pipeline) instead of a multi-row INSERT ...
    RETURNING. None where there is no sequence (SQLite): insert and read the ids back instead."""
    if conn.dialect.name != "postgresql" or count <= 0:
        return None
    sequence = func.pg_get_serial_sequence(table.name, "id")
    query = select(func.nextval(sequence).cast(BigInteger)).select_from(func.generate_series(1, bindparam("n")))
    return sorted(int(v) for v in conn.execute(query, {"n": count}).scalars())
