"""Cloud SQL connection forms and pool sizing (shared/storage/engine.py, docs/configuration.md).

Cloud SQL is PostgreSQL reached over TCP (private IP) or over its Unix socket
(`/cloudsql/PROJECT:REGION:INSTANCE/.s.PGSQL.5432`); both URL forms are checked against the
test cluster, which listens on 127.0.0.1 and on a socket in its own directory.
"""

from __future__ import annotations

import os

import pytest
from sqlalchemy import func, select

from shared.config import load_settings
from shared.devtools.postgres import PostgresCluster
from shared.storage.engine import Database, create_db_engine
from shared.storage.schema import conversations


def _count_conversations(url: str) -> int:
    db = Database(create_db_engine(load_settings({"DATABASE_URL": url})))
    try:
        with db.transaction() as conn:
            return int(conn.execute(select(func.count()).select_from(conversations)).scalar_one())
    finally:
        db.dispose()


def test_over_the_unix_socket_and_over_tcp(pg_cluster: PostgresCluster | None, pg_url: str) -> None:
    if pg_cluster is None:
        pytest.skip("WHISPR_TEST_DATABASE_URL is set: no cluster of our own to reach by its socket")
    socket_file = os.path.join(pg_cluster.root, f".s.PGSQL.{pg_cluster.port}")
    assert os.path.exists(socket_file)
    database = pg_url.rsplit("/", 1)[1]
    user = pg_cluster.user
    over_socket = f"postgresql+psycopg://{user}@/{database}?host={pg_cluster.root}&port={pg_cluster.port}"
    over_tcp = f"postgresql+psycopg://{user}@127.0.0.1:{pg_cluster.port}/{database}"
    no_driver = f"postgresql://{user}@127.0.0.1:{pg_cluster.port}/{database}"  # means psycopg
    pg8000_socket = f"postgresql+pg8000://{user}@/{database}?unix_sock={socket_file}"  # still accepted
    counts = {url: _count_conversations(url) for url in (over_socket, over_tcp, no_driver, pg8000_socket)}
    assert len(set(counts.values())) == 1, counts


def test_a_url_without_driver_means_psycopg() -> None:
    settings = load_settings({"DATABASE_URL": "postgres://whispr@127.0.0.1:5432/whispr"})
    engine = create_db_engine(settings)  # no connection is opened
    assert engine.dialect.driver == "psycopg"
    engine.dispose()


def test_pools_are_small_in_functions_and_larger_in_the_relay() -> None:
    url = "postgresql+psycopg://whispr@127.0.0.1:5432/whispr"  # no connection is opened
    for component, (size, overflow) in {"function": (2, 2), "relay": (10, 20), "": (10, 10)}.items():
        settings = load_settings({"DATABASE_URL": url, "WHISPR_COMPONENT": component})
        assert settings.db_pool == (size, overflow)
        engine = create_db_engine(settings)
        assert (engine.pool.size(), engine.pool._max_overflow) == (size, overflow)  # type: ignore[attr-defined]
        engine.dispose()
    explicit = load_settings(
        {"WHISPR_COMPONENT": "function", "WHISPR_DB_POOL_SIZE": "4", "WHISPR_DB_MAX_OVERFLOW": "0"}
    )
    assert explicit.db_pool == (4, 0)  # explicit settings win over the component's
