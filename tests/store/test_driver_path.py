"""The storage layer's own parts of the group commit's speed: ids drawn in bulk, the pool's
ping only for idle connections, array parameters typed as their statements state, and
psycopg's errors raised as SQLAlchemy's on the direct path."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from psycopg.types.array import BaseListDumper
from sqlalchemy import exc as sa_exc

from shared.app.services import Services
from shared.bootstrap import build_services
from shared.domain.ids import new_uuid, random_uuids
from shared.storage import engine as engine_module
from shared.storage.sql import pipelined, send_sql, typed_arrays
from tests.support import make_settings


@pytest.fixture
def services(store_url: str, key_path: str) -> Iterator[Services]:
    svc = build_services(make_settings(store_url, key_path))
    yield svc
    svc.close()


def test_ids_drawn_in_bulk_are_random_version_4_uuids() -> None:
    drawn = random_uuids(2000) + [new_uuid() for _ in range(600)]  # the pool refilled twice
    assert len(set(drawn)) == len(drawn)
    for value in drawn:
        parsed = uuid.UUID(value)
        assert parsed.version == 4 and parsed.variant == uuid.RFC_4122 and str(parsed) == value


def test_an_idle_connection_that_died_is_replaced_before_it_is_handed_out(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pre-ping on every checkout, but a connection idle in the pool longer than
    `IDLE_BEFORE_PING_SECONDS` is pinged first: one the server dropped meanwhile is replaced,
    and the caller never sees it."""
    if services.db.dialect != "postgresql":
        pytest.skip("PostgreSQL only (SQLite has no server to lose a connection)")
    with services.db.transaction() as conn:
        pid = conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one()
    admin = sa.create_engine(services.settings.database_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as other:
        other.execute(sa.text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    admin.dispose()
    monkeypatch.setattr(engine_module, "IDLE_BEFORE_PING_SECONDS", 0.0)
    with services.db.transaction() as conn:
        assert conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one() != pid


def test_a_failed_statement_on_the_direct_path_is_sqlalchemys_error(services: Services) -> None:
    """psycopg's errors come out as SQLAlchemy's (`IntegrityError` here), as they would
    through `Connection.execute`: callers and `StoreUnavailable` see one kind."""
    if services.db.engine.dialect.driver != "psycopg":
        pytest.skip("psycopg only")
    with pytest.raises(sa_exc.IntegrityError), services.db.transaction() as conn, pipelined(conn):
        send_sql(conn, "INSERT INTO outbox_cursors (name, txid, event_id) VALUES (%s, 0, 0)", ["twice"])
        send_sql(conn, "INSERT INTO outbox_cursors (name, txid, event_id) VALUES (%s, 0, 0)", ["twice"])


def test_array_parameters_arrive_as_the_types_the_statement_states(
    services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A list bound where the statement states its array type (`%(x)b::bigint[]`) is sent as
    that type without psycopg inspecting its items (its search for an element type fails the
    test here): every kind of item the hot statements bind (nulls, an all-null list, an empty
    one, non-ASCII text, bytes, aware times, 64-bit ints) arrives as it was, and the caller's
    lists are left plain."""
    if services.db.engine.dialect.driver != "psycopg":
        pytest.skip("psycopg only")

    def inspected(*_: object) -> None:
        raise AssertionError("psycopg looked for the element type of a typed array")

    monkeypatch.setattr(BaseListDumper, "_find_list_element", inspected)
    when = datetime(2026, 12, 8, 1, 2, 3, 456789, tzinfo=timezone.utc)
    params: dict[str, Any] = {
        "ids": ["a", None, "é-😀"],
        "nulls": [None, None],
        "none": [],
        "big": [2**63 - 1, -(2**63), None],
        "small": [1, 2],
        "raw": [b"\x00\xff", None],
        "at": [when, None],
        "flags": [True, False, None],
    }
    sql = (
        "SELECT %(ids)b::varchar(36)[], %(nulls)b::text[], %(none)b::BIGINT[], %(big)b::bigint[],"
        " %(small)b::integer[], %(raw)b::bytea[], %(at)b::TIMESTAMP WITH TIME ZONE[], %(flags)b::boolean[]"
    )
    assert set(typed_arrays(sql)) == set(params)
    with services.db.transaction() as conn:
        (row,) = send_sql(conn, sql, params).rows()
    assert list(row) == [
        ["a", None, "é-😀"],
        [None, None],
        [],
        [2**63 - 1, -(2**63), None],
        [1, 2],
        [b"\x00\xff", None],
        [when, None],
        [True, False, None],
    ]
    assert all(type(value) is list for value in params.values())
