"""Fixtures: a throwaway PostgreSQL cluster for the session (run as a non-root user), migrated
databases on PostgreSQL and SQLite, and the local gateway serving on a real port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta

import hypothesis
import pytest
import sqlalchemy as sa
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.app.services import utcnow
from shared.devtools.postgres import PostgresCluster, start_cluster
from shared.relay import asyncapi
from shared.storage.migrate import upgrade
from shared.telemetry import tracing
from tests.relay.recorder import EventRecorder
from tests.support import RunningServer, make_settings, serve

# Hypothesis' timing checks (per-example deadline, "generation too slow") fail by chance on a
# loaded 2-core machine: the properties are what the tests assert, never their speed.
hypothesis.settings.register_profile("whispr", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow])
hypothesis.settings.load_profile("whispr")


@pytest.fixture(scope="session", autouse=True)
def emitted_events() -> Iterator[EventRecorder]:
    """Every event any relay in this test run sends must be in the AsyncAPI document: the
    session fails at teardown otherwise (tests/relay/test_contract.py shows it can)."""
    with EventRecorder().installed() as recorder:
        yield recorder
    missing = asyncapi.undocumented(recorder.seen(), asyncapi.build_document())
    if missing:
        pytest.fail(
            f"the relay sent events that the AsyncAPI document lacks: {missing} (add them to shared/relay/events.py)"
        )


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PostgresCluster | None]:
    if os.environ.get("WHISPR_TEST_DATABASE_URL"):
        yield None
        return
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.stop()


def _fresh_database(cluster: PostgresCluster | None, name: str) -> str:
    if cluster is None:
        return os.environ["WHISPR_TEST_DATABASE_URL"]
    admin = sa.create_engine(cluster.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return cluster.url.rsplit("/", 1)[0] + f"/{name}"


@pytest.fixture(scope="session")
def pg_url(pg_cluster: PostgresCluster | None, tmp_path_factory: pytest.TempPathFactory) -> str:
    url = _fresh_database(pg_cluster, "whispr_api")
    upgrade(make_settings(url, str(tmp_path_factory.mktemp("keys") / "dev.pem")))
    return url


@pytest.fixture(scope="session")
def key_path(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("keys") / "dev-signing-key.pem")


@pytest.fixture(scope="session")
def server(pg_url: str, key_path: str) -> Iterator[RunningServer]:
    """The gateway on PostgreSQL. Send limits are raised so tests can send freely; the limits
    themselves are tested with their own server (tests/api/test_limits.py)."""
    settings = make_settings(
        pg_url,
        key_path,
        messages_burst=100_000,
        messages_per_minute=1_000_000,
        group_creations_per_day=100_000,
        scheduled_per_hour=100_000,
        max_pending_scheduled_per_user=100_000,
        searches_per_hour=100_000,
        reports_per_day=100_000,
    )
    with serve(settings) as running:
        yield running


@pytest.fixture(params=["postgresql", "sqlite"])
def store_url(
    request: pytest.FixtureRequest, pg_cluster: PostgresCluster | None, tmp_path: os.PathLike[str], key_path: str
) -> str:
    """A freshly migrated database on each backend (store tests run on both)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/store.db"
    else:
        url = _fresh_database(pg_cluster, f"whispr_store_{os.getpid()}")
    upgrade(make_settings(url, key_path))
    return url


@pytest.fixture
def time_travel(server: RunningServer) -> Iterator[list[timedelta]]:
    """Shift the service's clock: append a timedelta (from real now) to move to that time."""
    offset = [timedelta(0)]
    server.services.clock = lambda: utcnow() + offset[-1]
    try:
        yield offset
    finally:
        server.services.clock = utcnow


@pytest.fixture
def exported() -> Iterator[InMemorySpanExporter]:
    """Tracing on for one test (shared/telemetry/tracing.py), every span kept in memory as it
    ends (tests/traces.py reads them)."""
    exporter = InMemorySpanExporter()
    tracing.enable(exporter, batch=False)
    try:
        yield exporter
    finally:
        tracing.disable()
