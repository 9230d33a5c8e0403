"""Abuse limits with the default settings (the shared `server` fixture lifts them)."""

from __future__ import annotations

from shared.adapters.memory_limiter import MemoryRateLimiter
from tests.support import assert_error, client_random, make_settings, serve


def test_send_rate_limit_answers_429_with_retry_after(pg_url: str, key_path: str) -> None:
    with serve(make_settings(pg_url, key_path, messages_burst=20, messages_per_minute=100)) as server:
        server.services.limiter = MemoryRateLimiter(clock=lambda: 0.0)  # time stands still: no refill
        alice, bob = server.client(), server.client()
        cid = alice.direct_with(bob)["id"]
        statuses = [
            alice.post(f"/conversations/{cid}/messages", {"content": "x", "client_random": client_random()}).status_code
            for _ in range(20)
        ]
        assert statuses == [201] * 20
        limited = alice.post(f"/conversations/{cid}/messages", {"content": "x", "client_random": client_random()})
        body = assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) >= 1 and body["details"]["retry_after"] >= 1
        # reads are not throttled by the write limit, and bob is not limited by alice's sends
        assert alice.get(f"/conversations/{cid}/messages").status_code == 200
        assert bob.post(f"/conversations/{cid}/messages", {"content": "y", "client_random": 1}).status_code == 201
