"""Health on PostgreSQL: liveness gives the version and the server's time; readiness checks the
store and the bus and names the one that failed (the bus failing: tests/cloud/test_readiness.py)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from importlib import metadata

import httpx
import sqlalchemy as sa

from tests.support import BASE, RunningServer, assert_error, fresh_database, make_settings, serve


def _rfc3339(value: str) -> datetime:
    assert value.endswith("Z") and "." in value, value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def test_liveness_gives_version_and_time(server: RunningServer) -> None:
    for path in ("/health", f"{BASE}/health", "/live", "/health/live"):
        body = httpx.get(server.url + path, timeout=10).json()["data"]
        assert body["status"] == "ok" and body["service"] == "whispr-messaging"
        assert body["version"] == metadata.version("whispr-messaging")
        assert abs(_rfc3339(body["time"]) - datetime.now(timezone.utc)) < timedelta(minutes=1)


def test_readiness_checks_the_store_and_the_bus(server: RunningServer) -> None:
    for path in ("/health/ready", "/ready", f"{BASE}/health/ready"):
        response = httpx.get(server.url + path, timeout=10)
        assert response.status_code == 200, response.text
        body = response.json()["data"]
        assert body["checks"] == {"store": "ok", "bus": "ok"}
        assert body["version"] == metadata.version("whispr-messaging")
        _rfc3339(body["time"])


def test_readiness_names_the_store_when_it_is_gone(pg_url: str, key_path: str) -> None:
    url = fresh_database(pg_url, "whispr_readiness_store", key_path)
    with serve(make_settings(url, key_path)) as running:
        assert httpx.get(f"{running.url}/health/ready", timeout=10).status_code == 200
        admin = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:  # the store goes away under the running service
            conn.exec_driver_sql('DROP DATABASE "whispr_readiness_store" WITH (FORCE)')
        admin.dispose()
        response = httpx.get(f"{running.url}/health/ready", timeout=30)
        body = assert_error(response, 503, "not_ready")
        assert body["details"]["failed"] == ["store"]
        assert body["details"]["checks"]["bus"] == "ok"
        assert body["details"]["checks"]["store"].startswith("failed")
        assert "store" in body["error"]
        assert httpx.get(f"{running.url}/health", timeout=10).status_code == 200  # alive all the same
