"""Issue 10, item 6: with PostgreSQL unreachable, REST answers 503 `store_unavailable` with
Retry-After, and a socket push gets an error reply telling the client to retry while its
channel stays joined; once the store is back, the same channel and the same API work again
and nothing sent meanwhile was stored.

The outage is PostgreSQL's own: the test's database stops accepting connections and its
sessions are terminated (`ALTER DATABASE ... ALLOW_CONNECTIONS false`, `pg_terminate_backend`),
on a database of its own so that no other test notices."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from tests.relay.conftest import FREE
from tests.relay.phx import Phx
from tests.support import assert_error, client_random, fresh_database, make_settings, serve

DATABASE = "whispr_store_down"


@contextmanager
def store_down(admin_url: str) -> Iterator[None]:
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{DATABASE}" ALLOW_CONNECTIONS false')
            conn.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (DATABASE,)
            )
        yield
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'ALTER DATABASE "{DATABASE}" ALLOW_CONNECTIONS true')
        admin.dispose()


def _body(content: str) -> dict[str, object]:
    return {"content": content, "message_type": "text", "client_random": client_random()}


def test_store_down_is_503_with_retry_after_and_a_retry_reply_on_the_socket(pg_url: str, key_path: str) -> None:
    url = fresh_database(pg_url, DATABASE, key_path)
    with serve(make_settings(url, key_path, **FREE)) as server:
        alice, bob = server.client(), server.client()
        conv = alice.direct_with(bob)
        topic = f"conversation:{conv['id']}"
        sock = Phx.open(server, alice.user_id)
        try:
            sock.join_ok(topic)
            sock.joined(topic)
            with store_down(pg_url):
                for response in (
                    alice.post(f"/conversations/{conv['id']}/messages", _body("during the outage (REST)")),
                    alice.get("/conversations"),
                ):
                    assert_error(response, 503, "store_unavailable")
                    assert int(response.headers["retry-after"]) >= 1
                    assert response.json()["details"]["retry_after"] == int(response.headers["retry-after"])

                for event, payload in (
                    ("new_message", _body("during the outage (socket)")),
                    ("message_read", {"up_to_seq": 1}),
                ):
                    refused = sock.error(topic, event, payload)
                    assert refused["reason"] == "store_unavailable", refused
                    assert refused["retry_after"] >= 1
                user_topic = f"user:{alice.user_id}"
                status, response = sock.join(user_topic)  # a join is refused the same way (the client rejoins)
                assert status == "error" and response["reason"] == "store_unavailable"
                seen = sock.barrier()
                assert not [m for m in seen if m.event in ("phx_error", "phx_close")], seen

            # back: the same channel (never rejoined) and the API work again
            sent = sock.ok(topic, "new_message", _body("after the outage"))["message"]
            assert sent["seq"] == 1
            history = alice.get(f"/conversations/{conv['id']}/messages")
            assert history.status_code == 200
            assert [m["content"] for m in history.json()["data"]] == ["after the outage"]
        finally:
            sock.close()
