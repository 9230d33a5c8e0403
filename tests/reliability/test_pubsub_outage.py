"""The Pub/Sub emulator stopped mid-load and started again (issue 10): sends keep succeeding
while it is stopped (the store is the system of record; the events wait in the outbox), and once
it is back every event reaches the sockets exactly once, in seq order, when the periodic sweep
(Cloud Scheduler's POST /tasks/sweep, called here as it would) republishes what was left.

The official emulator is stopped with SIGSTOP and started again with SIGCONT: Pub/Sub stops
answering (connections hang, as in a network partition or an outage) and comes back with its
topics and subscriptions, as the real service does. (Killing the emulator would lose them: it
keeps everything in memory, which the real service never does.)
"""

from __future__ import annotations

import dataclasses
import os
import signal
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from shared.devtools.emulators import Emulator, start_pubsub
from tests.relay.conftest import FREE
from tests.relay.phx import Phx
from tests.reliability.senders import LiveReader
from tests.support import BASE, RunningServer, client_random, fresh_database, make_settings, serve

SECRET = "sweep-secret"
BEFORE, DURING, AFTER = 5, 8, 5  # REST sends; as many socket pushes during the outage


@pytest.fixture
def emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Emulator]:
    """An emulator of this test's own (it is stopped and started), the client libraries pointed at it."""
    emulator = start_pubsub()
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", emulator.host)
    try:
        yield emulator
    finally:
        os.killpg(emulator.process.pid, signal.SIGCONT)
        emulator.stop()


@pytest.fixture
def gateway(emulator: Emulator, pg_url: str, key_path: str) -> Iterator[RunningServer]:
    database_url = fresh_database(pg_url, "whispr_pubsub_outage", key_path)
    settings = dataclasses.replace(
        make_settings(database_url, key_path, **FREE),
        event_bus="pubsub",
        pubsub_create_missing=True,
        gcp_project=f"whispr-outage-{uuid.uuid4().hex[:8]}",
        instance_id=f"relay-{uuid.uuid4().hex[:10]}",
        scheduler="none",
        tasks_secret=SECRET,
    )
    with serve(settings) as running:
        yield running


def test_sends_succeed_while_pubsub_is_down_and_every_event_arrives_once_after(
    emulator: Emulator, gateway: RunningServer
) -> None:
    alice, bob = gateway.client(), gateway.client()
    conversation = alice.group_with(bob)["id"]
    topic = f"conversation:{conversation}"
    receiver = LiveReader(gateway, bob.user_id, conversation)
    sender = Phx.open(gateway, alice.user_id)
    live = receiver.live

    def wait_for(count: int, *, sweep: bool) -> None:
        deadline = time.monotonic() + 120
        while len({m["id"] for m in live}) < count:
            assert time.monotonic() < deadline, f"{len(live)} of {count} messages delivered"
            if sweep:  # what Cloud Scheduler does every minute
                swept = httpx.post(f"{gateway.url}{BASE}/tasks/sweep", headers={"X-Whispr-Tasks-Secret": SECRET})
                assert swept.status_code == 200, swept.text
            time.sleep(0.2)

    sent: list[dict[str, Any]] = []
    try:
        sender.join_ok(topic)
        for n in range(BEFORE):
            sent.append(alice.send(conversation, f"before {n}"))
        wait_for(BEFORE, sweep=False)

        os.killpg(emulator.process.pid, signal.SIGSTOP)  # Pub/Sub stops answering
        started = time.monotonic()
        for n in range(DURING):
            sent.append(alice.send(conversation, f"during {n}"))  # 201: stored, the event waits
            payload = {"content": f"pushed during {n}", "message_type": "text", "client_random": client_random()}
            sent.append(sender.ok(topic, "new_message", payload)["message"])
        outage = time.monotonic() - started
        os.killpg(emulator.process.pid, signal.SIGCONT)  # and it is back

        for n in range(AFTER):
            sent.append(alice.send(conversation, f"after {n}"))
        wait_for(len(sent), sweep=True)
    finally:
        os.killpg(emulator.process.pid, signal.SIGCONT)
        receiver.close()
        sender.close()
    ids = [m["id"] for m in live]
    assert len(ids) == len(set(ids)), "an event delivered twice"
    assert set(ids) == {m["id"] for m in sent}
    seqs = [m["seq"] for m in live]
    assert seqs == list(range(1, len(seqs) + 1)), f"in seq order, no gap: {seqs}"
    print(f"{2 * DURING} sends during the outage took {outage:.1f} s")
