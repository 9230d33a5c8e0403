"""Engines for PostgreSQL (psycopg 3, Cloud SQL socket or TCP) and SQLite (embedded default).

`DATABASE_URL` forms (docs/configuration.md):

- Cloud SQL over TCP (private IP, what terraform/sql.tf writes into Secret Manager):
  `postgresql+psycopg://USER:PASSWORD@10.1.2.3:5432/DBNAME`
- Cloud SQL over its Unix socket (Cloud Run / functions with the instance attached, or the
  Cloud SQL Auth Proxy with `--unix-socket /cloudsql`): no host, the socket's directory in `host`:
  `postgresql+psycopg://USER:PASSWORD@/DBNAME?host=/cloudsql/PROJECT:REGION:INSTANCE`
- SQLite (one machine): `sqlite:///var/whispr.db`

psycopg 3 replaced pg8000 on the measured numbers (docs/performance.md, "The database driver");
`postgresql+pg8000://` URLs still work.

The pool is sized per component (`Settings.db_pool`: small in functions, larger in the relay).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import make_url

from shared.config import Settings
from shared.domain.errors import StoreUnavailable

# The store cannot be reached: the server is down or restarting (connection refused or lost,
# statement cancelled by its shutdown), or the pool has no connection to give in time.
UNREACHABLE = (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.DisconnectionError, sa_exc.TimeoutError)

# A pooled connection idle longer than this is pinged before it is handed out (see `_ping_if_idle`).
IDLE_BEFORE_PING_SECONDS = 2.0


def create_db_engine(settings: Settings) -> Engine:
    url = make_url(settings.database_url)  # normalised by Settings (shared.config.normalise_database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(settings.database_url)
    pool_size, max_overflow = settings.db_pool
    engine = create_engine(url, pool_size=pool_size, max_overflow=max_overflow, pool_recycle=1800)
    _ping_if_idle(engine)
    return engine


def _ping_if_idle(engine: Engine) -> None:
    """The pool's pre-ping, only for a connection that sat idle in the pool: the group commit
    checks a connection out for every batch, a moment after the last one checked it in, and a
    ping each time was a round trip per batch (and its wait for the GIL) for nothing. A
    connection idle longer than `IDLE_BEFORE_PING_SECONDS` is pinged, and replaced if the ping
    fails (SQLAlchemy's pessimistic disconnect handling: `DisconnectionError` from `checkout`
    makes the pool connect again). One that broke within that time (the server restarted) fails
    its next statement, which SQLAlchemy sees as a disconnect: it invalidates the pool's
    connections, and the caller gets `StoreUnavailable` (a retry), as with a connection lost
    mid-transaction."""

    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        checked_in_at = record.info.get("checked_in_at")  # None: connected just now
        if checked_in_at is None or time.monotonic() - checked_in_at <= IDLE_BEFORE_PING_SECONDS:
            return
        try:
            alive = engine.dialect.do_ping(dbapi_connection)
        except Exception as error:
            raise sa_exc.DisconnectionError() from error
        if not alive:
            raise sa_exc.DisconnectionError()


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


@contextmanager
def reachable() -> Iterator[None]:
    """A store that cannot be reached is `StoreUnavailable` (a 503 the caller may retry), not
    a driver's error that every entry point would answer as its own failure (500)."""
    try:
        yield
    except UNREACHABLE as error:
        raise StoreUnavailable() from error


class Database:
    """The SQL store port: transactions over one engine."""

    def __init__(self, engine: Engine):
        self.engine = engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        with reachable(), self.engine.begin() as conn:
            yield conn

    @contextmanager
    def connect(self) -> Iterator[Connection]:
        """A connection for several transactions in a row (`conn.begin()` each)."""
        with reachable(), self.engine.connect() as conn:
            yield conn

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()
