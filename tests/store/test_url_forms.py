"""Every documented DATABASE_URL form works for `whispr-messaging migrate` and then `dev` (the
migrations build their engine from the same normalised URL as the service: shared.config.
normalise_database_url). Each form gets its own empty database, migrated by the command."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from shared.devtools.postgres import PostgresCluster, free_port
from tests.support import BASE, ROOT, service_env, service_process

FORMS = {
    "psycopg over TCP": "postgresql+psycopg://{user}@127.0.0.1:{port}/{db}",
    "psycopg over the Unix socket": "postgresql+psycopg://{user}@/{db}?host={root}&port={port}",
    "no driver (means psycopg)": "postgresql://{user}@127.0.0.1:{port}/{db}",
    "pg8000": "postgresql+pg8000://{user}@127.0.0.1:{port}/{db}",
    "SQLite": "sqlite:///{tmp}/whispr.db",
}


def _empty_database(cluster: PostgresCluster, name: str) -> None:
    admin = sa.create_engine(cluster.url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}"')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()


@pytest.mark.parametrize("form", FORMS)
def test_migrate_then_dev_with_each_documented_url_form(
    form: str, pg_cluster: PostgresCluster | None, key_path: str, tmp_path: Path
) -> None:
    if pg_cluster is None and not FORMS[form].startswith("sqlite"):
        pytest.skip("WHISPR_TEST_DATABASE_URL is set: no cluster of our own to make databases on")
    db = f"whispr_url_form_{list(FORMS).index(form)}"
    if pg_cluster is not None and not FORMS[form].startswith("sqlite"):
        _empty_database(pg_cluster, db)
        url = FORMS[form].format(user=pg_cluster.user, port=pg_cluster.port, root=pg_cluster.root, db=db)
    else:
        url = FORMS[form].format(tmp=tmp_path)
    port = free_port()
    env = service_env(url, key_path, port)
    migrated = subprocess.run(
        [sys.executable, "-m", "shared.cli", "migrate"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert migrated.returncode == 0, migrated.stderr[-3000:]
    assert "migrated to head" in migrated.stdout
    with service_process(env, port, tmp_path / "dev.log"):
        ready = httpx.get(f"http://127.0.0.1:{port}{BASE}/health/ready", timeout=10)
        assert ready.status_code == 200, ready.text
    if url.startswith("sqlite"):
        assert os.path.exists(tmp_path / "whispr.db")
