"""Issue 10, item 5: a backlog of joins on a few sockets does not starve the REST API. The
relay's calls run on its own share of the worker threads (and so of the pool), a socket runs
few of its calls at once, and a socket's waiting joins and pushes are bounded.

The joins are held in PostgreSQL itself: the test locks the `conversations` table (every join
reads it first) for as long as it likes, so the flood is in flight, deterministically, while a
REST request that does not read that table (the caller's scheduled messages) must complete."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from tests.relay.conftest import FREE
from tests.relay.phx import Phx
from tests.support import RunningServer, UserClient, fresh_database, make_settings, serve

DATABASE = "whispr_join_backlog"


@contextmanager
def conversations_locked(url: str) -> Iterator[None]:
    """Every statement reading `conversations` waits until the block ends."""
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            transaction = conn.begin()
            conn.exec_driver_sql("LOCK TABLE conversations IN ACCESS EXCLUSIVE MODE")
            try:
                yield
            finally:
                transaction.rollback()
    finally:
        engine.dispose()


def _conversations(server: RunningServer, owner: UserClient, count: int) -> list[str]:
    return [owner.direct_with(server.client())["id"] for _ in range(count)]


def test_rest_answers_while_a_flood_of_joins_is_held(pg_url: str, key_path: str) -> None:
    url = fresh_database(pg_url, DATABASE, key_path)
    with serve(make_settings(url, key_path, **FREE)) as server:
        alice = server.client()
        topics = [f"conversation:{c}" for c in _conversations(server, alice, 30)]
        flooders = [Phx.open(server, alice.user_id) for _ in range(4)]
        try:
            with conversations_locked(url):
                refs = {sock: [sock.push(topic, "phx_join", {}) for topic in topics] for sock in flooders}
                # 120 joins held in the store, far more than the worker threads: REST still answers
                listed = alice.get("/messages/scheduled")
                assert listed.status_code == 200, listed.text
                assert listed.json() == []
                # the flood is still in flight: no join has been answered
                for sock in flooders:
                    assert not [m for m in sock.barrier() if m.event == "phx_reply" and m.ref in refs[sock]]
            for sock, sent in refs.items():  # released: every join is answered, in full
                for ref in sent:
                    assert sock.reply(ref, timeout=60).payload["status"] == "ok"
        finally:
            for sock in flooders:
                sock.close()


def test_a_sockets_backlog_is_bounded_and_the_excess_refused_at_once(pg_url: str, key_path: str) -> None:
    url = fresh_database(pg_url, DATABASE, key_path)
    with serve(make_settings(url, key_path, **FREE, ws_max_pending_per_socket=20)) as server:
        alice = server.client()
        topics = [f"conversation:{c}" for c in _conversations(server, alice, 30)]
        sock = Phx.open(server, alice.user_id)
        try:
            with conversations_locked(url):
                refs = [sock.push(topic, "phx_join", {}) for topic in topics]
                # the joins beyond the bound are refused while the first 20 are still held
                for ref in refs[20:]:
                    reply = sock.reply(ref).payload
                    assert reply["status"] == "error" and reply["response"]["reason"] == "rate_limited", reply
                    assert reply["response"]["retry_after"] == 1
            for ref in refs[:20]:
                assert sock.reply(ref, timeout=60).payload["status"] == "ok"
            # the bound frees as the joins are answered: the refused ones can be retried
            status, _ = sock.join(topics[25])
            assert status == "ok"
        finally:
            sock.close()
