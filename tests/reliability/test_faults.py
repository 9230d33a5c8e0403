"""Faults under load (issue 10, "the suite that keeps it so"): PostgreSQL restarted while socket
and REST clients send. Every acknowledged message is in history exactly once, in seq order, with
no gap; what failed while the store was down was sent again by its client (same client_random)
and stored once. The service recovers by itself: nobody restarts it.

The relay SIGKILLed mid-stream is tests/relay/test_crash.py; the Pub/Sub emulator stopped and
started again is test_pubsub_outage.py.

PostgreSQL here is a cluster of the test's own (durable: fsync and synchronous commit on, as in
production, so that an acknowledged commit survives the crash), stopped in `immediate` mode (as
a crash: no shutdown checkpoint, every connection cut) and started again on the same port.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shared.bootstrap import build_services
from shared.devtools.postgres import PostgresCluster, free_port, start_cluster
from shared.storage.migrate import upgrade
from tests.relay.conftest import FREE
from tests.reliability.senders import RestSender, Sender, SocketSender
from tests.support import RunningServer, make_settings, service_env, service_process

SOAK = os.environ.get("WHISPR_SOAK") == "1"
CONVERSATIONS = 2
ACKED_BEFORE = 30 if not SOAK else 300  # per conversation, before the store goes down
ACKED_AFTER = 30 if not SOAK else 300  # per conversation, after it is back
OUTAGES = 1 if not SOAK else 3
DEADLINE = 240.0


@pytest.fixture
def durable_cluster() -> Iterator[PostgresCluster]:
    cluster = start_cluster(durable=True)
    try:
        yield cluster
    finally:
        cluster.stop()


def wait_until(condition: Any, what: str, timeout: float = 120.0, check: Any = None) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"not within {timeout:.0f} s: {what}"
        if check is not None:
            check()
        time.sleep(0.05)


def acked_per_conversation(senders: list[Sender]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for sender in senders:
        counts[sender.conversation_id] = counts.get(sender.conversation_id, 0) + len(sender.acked)
    return counts


def history(server: RunningServer, user_id: str, conversation_id: str) -> list[dict[str, Any]]:
    """The whole history through the REST API, oldest first (pages of 100, seq cursors)."""
    client = server.client(user_id)
    try:
        messages: list[dict[str, Any]] = []
        before: int | None = None
        while True:
            params: dict[str, Any] = {"limit": 100, **({"before_seq": before} if before else {})}
            response = client.get(f"/conversations/{conversation_id}/messages", params=params)
            assert response.status_code == 200, response.text
            page = response.json()["data"]
            if not page:
                return list(reversed(messages))
            messages += page
            before = min(m["seq"] for m in page)
            if before <= 1:
                return list(reversed(messages))
    finally:
        client.close()


def test_postgresql_restarted_mid_load_loses_nothing_acknowledged(
    durable_cluster: PostgresCluster, key_path: str, tmp_path: Path
) -> None:
    database_url = durable_cluster.url
    upgrade(make_settings(database_url, key_path))
    port = free_port()
    env = service_env(database_url, key_path, port, FREE)
    services = build_services(make_settings(database_url, key_path, **FREE))  # tokens; the process serves
    server = RunningServer(f"http://127.0.0.1:{port}", services)
    senders: list[Sender] = []
    threads: list[threading.Thread] = []
    try:
        with service_process(env, port, tmp_path / "service.log") as proc:
            for _ in range(CONVERSATIONS):
                users = [server.client() for _ in range(3)]
                conversation = users[0].group_with(*users[1:])["id"]
                senders += [
                    SocketSender(server, users[0].user_id, conversation),
                    SocketSender(server, users[1].user_id, conversation),
                    RestSender(server, users[2].user_id, conversation),
                ]
                for user in users:
                    user.close()
            deadline = time.monotonic() + DEADLINE
            threads = [threading.Thread(target=s.run, args=(deadline,), daemon=True) for s in senders]
            for thread in threads:
                thread.start()

            def healthy() -> None:
                assert proc.poll() is None, "the service died"
                refused = [r for s in senders for r in s.refused]
                assert not refused, refused

            target = ACKED_BEFORE
            for _ in range(OUTAGES):
                wait_until(
                    lambda target=target: min(acked_per_conversation(senders).values()) >= target,
                    "the senders get going",
                    check=healthy,
                )
                failures_before = {id(s): len(s.failures) for s in senders}
                durable_cluster.stop_server("immediate")
                # down until both kinds of client have seen it fail (sends in flight were cut)
                wait_until(
                    lambda before=failures_before: all(
                        any(len(s.failures) > before[id(s)] for s in senders if isinstance(s, kind))
                        for kind in (SocketSender, RestSender)
                    ),
                    "socket and REST senders see the store down",
                    check=healthy,
                )
                durable_cluster.start_server()
                target = max(acked_per_conversation(senders).values()) + ACKED_AFTER
            wait_until(
                lambda: min(acked_per_conversation(senders).values()) >= target, "sends succeed again", check=healthy
            )
            for sender in senders:
                sender.stop.set()
            for thread in threads:
                thread.join(max(1.0, deadline - time.monotonic()))
                assert not thread.is_alive(), "a sender did not get its last sends acknowledged"
            healthy()

            by_conversation: dict[str, list[Sender]] = {}
            for sender in senders:
                by_conversation.setdefault(sender.conversation_id, []).append(sender)
            for conversation_id, mates in by_conversation.items():
                acked = {m["id"]: m for s in mates for m in s.acked.values()}
                for reader in mates:  # every member reads the same history
                    seen = [m for m in history(server, reader.user_id, conversation_id) if m["message_type"] == "text"]
                    all_seen = history(server, reader.user_id, conversation_id)
                    assert [m["seq"] for m in all_seen] == list(range(1, len(all_seen) + 1)), "seq order, no gap"
                    ids = [m["id"] for m in seen]
                    assert len(ids) == len(set(ids)), "a message twice"
                    assert set(ids) == set(acked), "history is exactly what was acknowledged"
                    for message in seen:
                        assert message["seq"] == acked[message["id"]]["seq"]
                    keys = [(m["sender_id"], m["client_random"]) for m in seen]
                    assert len(keys) == len(set(keys)), "a send stored twice"
            failures = {
                kind.__name__: sum(len(s.failures) for s in senders if isinstance(s, kind))
                for kind in (SocketSender, RestSender)
            }
            acknowledged = sum(len(s.acked) for s in senders)
            print(f"acknowledged {acknowledged} messages over {OUTAGES} outage(s); retried: {failures}")
            print("failures seen:", sorted({f[:60] for s in senders for f in s.failures}))
    finally:
        for sender in senders:
            sender.stop.set()
        services.close()

    with sa.create_engine(database_url).connect() as conn:  # the store agrees
        rows = conn.execute(sa.text("SELECT conversation_id, seq FROM messages ORDER BY conversation_id, seq")).all()
    per: dict[str, list[int]] = {}
    for row in rows:
        per.setdefault(str(row.conversation_id), []).append(row.seq)
    for seqs in per.values():
        assert seqs == list(range(1, len(seqs) + 1))
