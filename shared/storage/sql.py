"""SQL building blocks whose best form differs between PostgreSQL and SQLite.

The hot paths (group commit, the outbox) run statements over a batch of ids. Written the
obvious way (`IN (:a, :b, ...)`, a multi-row `VALUES`), every batch size gives a different
statement text with one parameter per value: psycopg converts such texts in pure Python on
every execute (its cache stops at 4 KiB texts), and PostgreSQL plans each one afresh. The forms
here keep one text whatever the count, so it is converted once and prepared by the server.

The hottest statements are also built once (`Prebuilt`) rather than on every call: SQLAlchemy
walks a statement to compute its cache key once per statement object, so a statement rebuilt on
each call pays for the building and the walk every time (about a fifth of a batch's CPU).

The group commit's statements go further on PostgreSQL through psycopg (`send`, `pipelined`):
compiled once, run on the driver's own connection under the SQLAlchemy one (same transaction),
prepared by the server, their array parameters typed as the statement states them
(`typed_arrays`), and sent several to a round trip in psycopg's pipeline mode. A batch's
thread then waits on PostgreSQL twice instead of once per statement, and every wait is also a
wait for the GIL when it comes back (the event loop holds it most of the time). Other drivers
(SQLite, pg8000) run the same statements through SQLAlchemy, one at a time.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Generic, TypeVar, cast

import psycopg
from psycopg.postgres import types as postgres_types
from psycopg.types.array import ListBinaryDumper
from sqlalchemy import BigInteger, ColumnElement, Connection, Table, any_, bindparam, func, select
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Dialect
from sqlalchemy.sql.base import Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement

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

    def send(self, conn: Connection, params: Mapping[str, Any]) -> Pending:
        """Run the statement with `params`; its rows (mappings by column name, through the
        columns' types as SQLAlchemy gives them) once `Pending.rows` is asked. On psycopg
        inside `pipelined`, that is after the pipeline's round trip."""
        raw = driver_connection(conn)
        if raw is None:
            result = conn.execute(self(conn), dict(params))
            rows = [row._mapping for row in result] if result.returns_rows else []
            return Pending(lambda: rows)
        direct = self._direct
        if direct is None:  # two threads may both compile it: the same text, harmless
            direct = self._direct = _Direct(self(conn), conn.dialect)
        cursor = raw.cursor()
        with driver_errors(conn):
            cursor.execute(direct.sql, direct.bind(params), prepare=True)
        return Pending(lambda: direct.read(conn, cursor))

    _direct: _Direct | None = None


class _Direct:
    """A statement compiled once for psycopg: its text, its parameters' bind processors and
    defaults, and its result columns' names and processors (what SQLAlchemy's execute applies)."""

    def __init__(self, statement: Executable, dialect: Dialect):
        compiled = cast(SQLCompiler, cast(ClauseElement, statement).compile(dialect=dialect))
        columns = compiled._result_columns or []
        # every parameter in binary: psycopg dumps a list in text with a regular expression per
        # element, ten times slower than its binary form (a batch binds lists of ids)
        self.sql = re.sub(r"%\((\w+)\)s", r"%(\1)b", compiled.string)
        self.defaults = {name: bind.value for name, bind in compiled.binds.items() if not bind.required}
        self.binds = [
            (name, processor)
            for name, bind in compiled.binds.items()
            if (processor := bind.type.bind_processor(dialect)) is not None
        ]
        self.arrays = typed_arrays(self.sql)
        self.names = [column.keyname for column in columns]
        self.results = [
            (i, processor)
            for i, column in enumerate(columns)
            if (processor := column.type.result_processor(dialect, None)) is not None
        ]

    def bind(self, params: Mapping[str, Any]) -> dict[str, Any]:
        values = {**self.defaults, **params}
        for name, processor in self.binds:
            values[name] = processor(values[name])
        _type_arrays(values, self.arrays)
        return values

    def read(self, conn: Connection, cursor: psycopg.Cursor[Any]) -> list[Mapping[str, Any]]:
        with driver_errors(conn):
            fetched = cursor.fetchall()  # inside a pipeline: fetched now, a round trip of its own
        rows: list[Mapping[str, Any]] = []
        for fetched_row in fetched:
            values = list(fetched_row)
            for i, processor in self.results:
                values[i] = processor(values[i])
            rows.append(dict(zip(self.names, values, strict=True)))
        return rows


class Pending:
    """The rows a statement returns, read when asked (after the pipeline's round trip)."""

    def __init__(self, fetch: Callable[[], Sequence[Any]]):
        self._fetch = fetch

    def rows(self) -> Sequence[Any]:
        return self._fetch()


def driver_connection(conn: Connection) -> psycopg.Connection[Any] | None:
    """The psycopg connection under `conn` (the same session and transaction), or None when
    the driver is another (SQLite, pg8000): then statements go through SQLAlchemy."""
    if conn.dialect.driver != "psycopg":
        return None
    raw = conn.connection.driver_connection
    return cast("psycopg.Connection[Any]", raw) if raw is not None else None


def send_sql(conn: Connection, sql: str, params: Mapping[str, Any] | Sequence[Any]) -> Pending:
    """Run SQL text (psycopg's placeholders) on the psycopg connection under `conn`, prepared
    by the server; its rows (tuples) once `Pending.rows` is asked (not for a statement that
    returns none). PostgreSQL with psycopg only."""
    raw = driver_connection(conn)
    assert raw is not None, "send_sql needs psycopg"
    if isinstance(params, Mapping):
        params = dict(params)  # the caller's lists are left as they are
        _type_arrays(params, typed_arrays(sql))
    cursor = raw.cursor()
    with driver_errors(conn):
        cursor.execute(sql, params, prepare=True)

    def read() -> list[tuple[Any, ...]]:
        with driver_errors(conn):
            return cursor.fetchall()

    return Pending(read)


# Array parameters whose element type the statement states (`%(ids)b::varchar[]`).
#
# Given a plain list, psycopg's binary list dumper looks for the element type twice per execute
# (the first non-null item, its Python type, the smallest integer type that fits) before dumping
# it: a third of a batch's parameter work, with ~40 lists a batch. A list of one of the classes
# below is dumped as the array type it names, item by item, without looking.


class TypedArray(list[Any]):
    """A list that psycopg sends as the array type its class was registered with."""


def _array_class(element: str) -> type[TypedArray]:
    """A `TypedArray` subclass for `element`, its dumper registered with psycopg's global
    adapters: connections take them from there when they connect, so this runs at import."""
    info = postgres_types[element]
    name = info.name.capitalize()
    cls = type(f"{name}Array", (TypedArray,), {})
    dumper = type(f"{name}ArrayDumper", (ListBinaryDumper,), {"oid": info.array_oid, "element_oid": info.oid})
    psycopg.adapters.register_dumper(cls, dumper)
    return cls


# the element types the statements' arrays have; another is sent as a plain list
_ARRAY_CLASSES = {
    postgres_types[element].name: _array_class(element)
    for element in ("varchar", "text", "int8", "int4", "bool", "bytea", "timestamptz")
}
_ARRAY_PARAMETER = re.compile(r"%\((\w+)\)b::([a-z][a-z ]*)(?:\(\d+\))?\[\]", re.IGNORECASE)


@functools.cache  # a statement's text is read once (send_sql's texts are the modules' constants)
def typed_arrays(sql: str) -> Mapping[str, type[TypedArray]]:
    """The array parameters of a statement (psycopg's binary placeholders) whose type it states
    and `_ARRAY_CLASSES` knows, by name, each with the list class that dumps it as that type."""
    found = {}
    for name, element in _ARRAY_PARAMETER.findall(sql):
        info = postgres_types.get(element.lower())
        cls = _ARRAY_CLASSES.get(info.name) if info is not None else None
        if cls is not None:
            found[name] = cls
    return found


def _type_arrays(values: dict[str, Any], arrays: Mapping[str, type[TypedArray]]) -> None:
    """Each plain list of `values` that `arrays` names replaced by a copy of its class."""
    for name, cls in arrays.items():
        value = values.get(name)
        if type(value) is list:
            values[name] = cls(value)


@contextmanager
def pipelined(conn: Connection) -> Iterator[None]:
    """The statements sent inside (`Prebuilt.send`, `send_sql`) go to PostgreSQL together,
    in one round trip when the block ends (psycopg's pipeline mode); elsewhere, one at a time.
    Nothing inside may run a statement through SQLAlchemy (it would read its result before
    the round trip)."""
    raw = driver_connection(conn)
    if raw is None:
        yield
        return
    with driver_errors(conn), raw.pipeline():
        yield


@contextmanager
def driver_errors(conn: Connection) -> Iterator[None]:
    """psycopg's errors as SQLAlchemy would raise them (an `OperationalError`, an
    `IntegrityError`...), so callers see the same exceptions on both paths (and a lost server
    is still `StoreUnavailable`); a lost connection is invalidated, so the pool replaces it."""
    try:
        yield
    except psycopg.Error as error:
        lost = conn.dialect.is_disconnect(cast(Any, error), cast(Any, driver_connection(conn)), None)
        if lost:
            conn.invalidate(error)
        raise sa_exc.DBAPIError.instance(None, None, error, psycopg.Error, connection_invalidated=lost) from error


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
