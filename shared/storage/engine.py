"""Engines for PostgreSQL (pg8000, Cloud SQL socket or TCP) and SQLite (embedded default).

`DATABASE_URL` forms (docs/configuration.md):

- Cloud SQL over TCP (private IP, what terraform/sql.tf writes into Secret Manager):
  `postgresql+pg8000://USER:PASSWORD@10.1.2.3:5432/DBNAME`
- Cloud SQL over its Unix socket (Cloud Run / functions with the instance attached, or the
  Cloud SQL Auth Proxy with `--unix-socket /cloudsql`): no host, the socket file in `unix_sock`:
  `postgresql+pg8000://USER:PASSWORD@/DBNAME?unix_sock=/cloudsql/PROJECT:REGION:INSTANCE/.s.PGSQL.5432`
- SQLite (one machine): `sqlite:///var/whispr.db`

The pool is sized per component (`Settings.db_pool`: small in functions, larger in the relay).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

from shared.config import Settings


def create_db_engine(settings: Settings) -> Engine:
    url = make_url(settings.database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings.database_url)
    if url.get_driver_name() == "pg8000":
        _memoize_pg8000_paramstyle()
    pool_size, max_overflow = settings.db_pool
    return create_engine(
        url,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


def _memoize_pg8000_paramstyle() -> None:
    """pg8000 rewrites every statement's `%s` placeholders to `$n` with a character-by-character
    scanner in pure Python, on every execute: about 0.1-0.8 ms of CPU per statement, the largest
    single cost of a send (docs/performance.md, "Group commit"). For the `format` style that
    SQLAlchemy uses, the rewritten text depends on the statement text alone (the parameters pass
    through unchanged), so it is remembered per statement text (bounded: IN lists make variants).
    Other styles go to pg8000 as they are."""
    try:
        from pg8000 import legacy
    except ImportError:
        return
    original = legacy.convert_paramstyle
    if getattr(original, "_whispr_memo", False):
        return
    convert = functools.lru_cache(maxsize=4096)(lambda query: original("format", query, ()))

    def convert_paramstyle(style: str, query: str, args: Any) -> tuple[str, Any]:
        if style != "format":
            return original(style, query, args)  # type: ignore[no-any-return]
        return convert(query)[0], args

    convert_paramstyle._whispr_memo = True  # type: ignore[attr-defined]
    legacy.convert_paramstyle = convert_paramstyle


def _sqlite_engine(database_url: str) -> Engine:
    path = make_url(database_url).database
    if path and path != ":memory:":
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    engine = create_engine(database_url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: two writers never deadlock upgrading.
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


class Database:
    """The SQL store port: transactions over one engine."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()
