"""The periodic sweep (`POST /tasks/sweep`, Cloud Scheduler every minute) also recovers the
outbox: an event a crash left committed but unpublished goes out on the next sweep.
(Its Cloud Tasks part, enqueuing what came within the 30-day range, is in
tests/cloud/test_cloud_tasks_scheduler.py.)"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import insert, select

from shared.app.services import utcnow
from shared.ports.bus import PublishedEvent
from shared.storage.schema import events, unpublished_events
from tests.support import BASE, RunningServer, fresh_database, make_settings, serve

SECRET = {"X-Whispr-Tasks-Secret": "sweep-s3cret"}


@pytest.fixture(scope="module")
def gateway(pg_url: str, key_path: str) -> Iterator[RunningServer]:
    url = fresh_database(pg_url, "whispr_sweep", key_path)
    settings = dataclasses.replace(make_settings(url, key_path), scheduler="none", tasks_secret="sweep-s3cret")
    with serve(settings) as running:
        yield running


def sweep(server: RunningServer) -> dict[str, int]:
    response = httpx.post(f"{server.url}{BASE}/tasks/sweep", headers=SECRET)
    assert response.status_code == 200, response.text
    return dict(response.json()["data"])


def test_the_sweep_republishes_what_a_crash_left_in_the_outbox(gateway: RunningServer) -> None:
    alice, bob = gateway.client(), gateway.client()
    cid = alice.direct_with(bob)["id"]
    sent = alice.send(cid, "lost in a crash")
    # the state a crash between commit and publish leaves: committed, never marked published
    with gateway.services.db.transaction() as conn:
        position, event_id = conn.execute(
            select(events.c.id, events.c.event_id).where(
                events.c.conversation_id == cid, events.c.name == "new_message"
            )
        ).one()
        conn.execute(insert(unpublished_events).values(event_id=position, created_at=utcnow()))
    heard: list[PublishedEvent] = []
    # the sweep's notification pass records message_recipients (message.created) of its own
    unsubscribe = gateway.services.bus.subscribe(lambda e: None if e.name == "message_recipients" else heard.append(e))
    try:
        assert sweep(gateway)["republished"] == 0  # younger than the grace period: maybe still publishing
        assert heard == []
        gateway.services.clock = lambda: utcnow() + timedelta(seconds=10)
        try:
            swept = sweep(gateway)
        finally:
            gateway.services.clock = utcnow
        assert swept == {"sent": 0, "expired": 0, "enqueued": 0, "republished": 1}
        assert [(e.event_id, e.name) for e in heard] == [(event_id, "new_message")]
        assert heard[0].payload["message"]["id"] == sent["id"]
        assert heard[0].payload["message"]["content"] == "lost in a crash"
        with gateway.services.db.transaction() as conn:
            waiting = conn.execute(select(unpublished_events).where(unpublished_events.c.event_id == position)).all()
        assert waiting == []  # marked published
        assert sweep(gateway)["republished"] == 0  # once
    finally:
        unsubscribe()
