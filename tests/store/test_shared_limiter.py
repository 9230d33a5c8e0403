"""Rate limits shared across instances (WHISPR_RATE_LIMITER=sql, shared/adapters/sql_limiter.py):
the same user hitting two service processes gets one budget, counted in PostgreSQL."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import pytest

from shared.adapters.sql_limiter import SqlRateLimiter
from shared.bootstrap import build_services
from shared.devtools.postgres import free_port
from shared.storage.engine import Database, create_db_engine
from tests.support import RunningServer, fresh_database, make_settings, service_env, service_process


def test_buckets_refill_and_are_shared_by_every_limiter_on_the_database(pg_url: str) -> None:
    settings = make_settings(pg_url, "unused.pem")
    first, second = Database(create_db_engine(settings)), Database(create_db_engine(settings))
    try:
        a, b = SqlRateLimiter(first), SqlRateLimiter(second)
        key = f"test:{uuid.uuid4()}"
        taken = [limiter.acquire(key, per_second=0.001, burst=4) for limiter in (a, b, a, b, a, b)]
        assert taken[:4] == [0.0] * 4  # one burst of 4 between both
        assert all(wait > 900 for wait in taken[4:])  # then ~1000 s until the next token
        fast = f"test:{uuid.uuid4()}"
        assert a.acquire(fast, per_second=1000.0, burst=1) == 0.0
        assert b.acquire(fast, per_second=1000.0, burst=1) in (0.0, pytest.approx(0.001, abs=0.001))
    finally:
        first.dispose()
        second.dispose()


def test_sqlite_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    db = Database(create_db_engine(make_settings(f"sqlite:///{tmp_path}/x.db", "unused.pem")))
    with pytest.raises(ValueError, match="WHISPR_RATE_LIMITER=sql needs PostgreSQL"):
        SqlRateLimiter(db)
    db.dispose()


def test_two_processes_share_one_send_budget(pg_url: str, key_path: str, tmp_path: Path) -> None:
    url = fresh_database(pg_url, "whispr_shared_limits", key_path)
    limits = {"messages_burst": 5, "messages_per_minute": 1}
    ports = [free_port(), free_port()]
    services = build_services(make_settings(url, key_path))  # mints tokens; the processes serve
    with contextlib.ExitStack() as stack:
        for n, port in enumerate(ports):
            env = service_env(url, key_path, port, limits, WHISPR_RATE_LIMITER="sql")
            stack.enter_context(service_process(env, port, tmp_path / f"service-{n}.log"))
        a, b = (RunningServer(f"http://127.0.0.1:{port}", services) for port in ports)
        alice, bob = a.client(), a.client()
        alice_on_b = b.client(alice.user_id)
        cid = alice.direct_with(bob)["id"]
        statuses = []
        for n in range(10):  # alternately on each instance
            client = alice if n % 2 == 0 else alice_on_b
            body = {"content": f"m{n}", "message_type": "text", "client_random": n + 1}
            statuses.append(client.post(f"/conversations/{cid}/messages", body).status_code)
        assert statuses.count(201) == 5, statuses  # with per-instance budgets it would be 10
        assert statuses[5:] == [429] * 5
    services.close()
