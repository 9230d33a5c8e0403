"""Scheduled messages (rules.md: Scheduled; api.md: /messages/scheduled): the REST contract,
and the local scheduler firing them for real: on time, once, across a restart and with two
instances on one database; plus the task targets Cloud Tasks calls (tests/cloud/test_cloud_tasks_scheduler.py)."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import httpx
import pytest
from sqlalchemy import func, select

from shared.adapters.local_scheduler import LocalScheduler
from shared.app.scheduled import fire_scheduled
from shared.app.services import utcnow
from shared.config import Settings
from shared.storage.engine import Database, create_db_engine
from shared.storage.schema import messages, scheduled_messages
from tests.api.event_rows import recorded
from tests.support import BASE, RunningServer, UserClient, assert_error, fresh_database, make_settings, serve, wait_for

T = TypeVar("T")

LIFTED = {"messages_burst": 100_000, "messages_per_minute": 1_000_000, "group_creations_per_day": 100_000}


def quick_settings(url: str, key_path: str, **limits: Any) -> Settings:
    """A scheduler that accepts due times 1 s ahead, so its timer can be watched firing."""
    values = {**LIFTED, "scheduled_min_lead_seconds": 1, "scheduled_per_hour": 100_000, **limits}
    return make_settings(url, key_path, **values)


def iso(value: datetime) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def schedule(
    client: UserClient, conversation_id: str, at: datetime, content: str = "later", **fields: Any
) -> httpx.Response:
    body = {
        "conversation_id": conversation_id,
        "content": content,
        "message_type": "text",
        "scheduled_at": iso(at),
        **fields,
    }
    return client.post("/messages/scheduled", body)


def scheduled_ok(
    client: UserClient, conversation_id: str, at: datetime, content: str = "later", **fields: Any
) -> dict[str, Any]:
    response = schedule(client, conversation_id, at, content, **fields)
    assert response.status_code == 201, response.text
    return dict(response.json()["data"])


def row(db: Database, scheduled_id: str) -> dict[str, Any]:
    with db.transaction() as conn:
        found = conn.execute(select(scheduled_messages).where(scheduled_messages.c.id == scheduled_id)).first()
    assert found is not None
    return dict(found._mapping)


def stored_messages(db: Database, conversation_id: str) -> list[dict[str, Any]]:
    with db.transaction() as conn:
        rows = conn.execute(
            select(messages).where(messages.c.conversation_id == conversation_id).order_by(messages.c.seq)
        )
        return [dict(r._mapping) for r in rows]


def history(client: UserClient, conversation_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/conversations/{conversation_id}/messages")
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def status_of(db: Database, scheduled_id: str) -> Callable[[], str | None]:
    def probe() -> str | None:
        status = row(db, scheduled_id)["status"]
        return None if status in ("pending", "sending") else str(status)

    return probe


@pytest.fixture(scope="module")
def quick(pg_url: str, key_path: str) -> Iterator[RunningServer]:
    """A gateway with its scheduler on a database of its own (no other scheduler touches it)."""
    url = fresh_database(pg_url, "whispr_sched_quick", key_path)
    with serve(quick_settings(url, key_path)) as running:
        yield running


@pytest.fixture(scope="module")
def manual(pg_url: str, key_path: str) -> Iterator[RunningServer]:
    """No scheduler at all: only the task targets (WHISPR_TASKS_SECRET) and the tests fire."""
    url = fresh_database(pg_url, "whispr_sched_manual", key_path)
    settings = dataclasses.replace(make_settings(url, key_path, **LIFTED), scheduler="none", tasks_secret="s3cret")
    with serve(settings) as running:
        yield running


@pytest.fixture
def frozen(server: RunningServer) -> Iterator[datetime]:
    """The shared server's clock stopped at one instant, so lead times are exact."""
    at = utcnow()
    server.services.clock = lambda: at
    try:
        yield at
    finally:
        server.services.clock = utcnow


# --- the timer fires -----------------------------------------------------------------------


def test_scheduled_message_arrives_at_its_time_with_the_next_seq_and_not_before(quick: RunningServer) -> None:
    alice, bob = quick.client(), quick.client()
    cid = alice.direct_with(bob)["id"]
    before = alice.send(cid, "before")
    due = utcnow() + timedelta(seconds=1.5)
    item = scheduled_ok(alice, cid, due, "on time", metadata={"k": "v"})
    assert item["status"] == "pending" and item["message_id"] is None
    assert item["conversation_id"] == cid and item["content"] == "on time" and item["message_type"] == "text"
    assert parse(item["scheduled_at"]) == due

    def arrived() -> dict[str, Any] | None:
        found = [m for m in history(bob, cid) if m["content"] == "on time"]
        if found:
            assert utcnow() >= due, "in history before its time"
        return found[0] if found else None

    assert not [m for m in history(bob, cid) if m["content"] == "on time"]
    message = wait_for(arrived, what="the scheduled message in history")
    assert parse(message["sent_at"]) >= due  # never before its time
    assert message["seq"] == before["seq"] + 1
    assert message["sender_id"] == alice.user_id and message["metadata"] == {"k": "v"}
    assert message["client_random"] == item["client_random"]

    # the firing marks the item sent in its own transaction, just after the message's commit
    assert wait_for(status_of(quick.services.db, item["id"]), timeout=10) == "sent"
    stored = row(quick.services.db, item["id"])
    assert stored["message_id"] == message["id"]
    # once sent it is no longer pending; with status=sent it carries the message id
    assert item["id"] not in [i["id"] for i in alice.get("/messages/scheduled").json()]
    sent = alice.get("/messages/scheduled", params={"status": "sent"}).json()
    assert [(i["id"], i["status"], i["message_id"]) for i in sent] == [(item["id"], "sent", message["id"])]
    new_messages = [e for e in recorded(quick, "new_message", cid) if e["payload"]["message"]["id"] == message["id"]]
    assert len(new_messages) == 1 and new_messages[0]["seq"] == message["seq"]


def test_moving_a_due_time_earlier_wakes_the_timer(quick: RunningServer) -> None:
    alice, bob = quick.client(), quick.client()
    cid = alice.direct_with(bob)["id"]
    item = scheduled_ok(alice, cid, utcnow() + timedelta(minutes=10), "later")
    due = utcnow() + timedelta(seconds=1.5)
    patched = alice.patch(f"/messages/scheduled/{item['id']}", {"scheduled_at": iso(due), "content": "sooner"})
    assert patched.status_code == 200, patched.text
    assert patched.json()["data"]["content"] == "sooner" and parse(patched.json()["data"]["scheduled_at"]) == due
    # the store is reread only every 5 minutes: only the wake-up can send it this soon
    assert wait_for(status_of(quick.services.db, item["id"]), timeout=10) == "sent"
    assert [m["content"] for m in history(bob, cid)] == ["sooner"]


def test_a_restart_in_between_still_sends_it_exactly_once(pg_url: str, key_path: str) -> None:
    settings = quick_settings(fresh_database(pg_url, "whispr_sched_restart", key_path), key_path)
    db = Database(create_db_engine(settings))
    try:
        with serve(settings) as first:
            alice, bob = first.client(), first.client()
            cid = alice.direct_with(bob)["id"]
            due = utcnow() + timedelta(seconds=1.5)
            item = scheduled_ok(alice, cid, due, "survives")
        # the service is down past the due time: nothing fires
        time.sleep(max(0.0, (due - utcnow()).total_seconds()) + 0.3)
        assert row(db, item["id"])["status"] == "pending"
        assert stored_messages(db, cid) == []
        with serve(settings) as second:
            assert wait_for(status_of(db, item["id"])) == "sent"
            bob_again = second.client(bob.user_id)
            assert [m["content"] for m in history(bob_again, cid)] == ["survives"]
        # and a third start finds nothing left to send
        with serve(settings) as third:
            scheduler = third.services.scheduler
            assert isinstance(scheduler, LocalScheduler)
            wait_for(lambda: scheduler.passes >= 1, what="a first pass")
        sent = stored_messages(db, cid)
        assert [(m["content"], m["seq"]) for m in sent] == [("survives", 1)]
        assert row(db, item["id"])["message_id"] == sent[0]["id"]
    finally:
        db.dispose()


def test_two_instances_on_one_database_send_each_once(pg_url: str, key_path: str) -> None:
    settings = quick_settings(fresh_database(pg_url, "whispr_sched_pair", key_path), key_path)
    db = Database(create_db_engine(settings))
    try:
        with serve(settings) as a:
            alice, bob = a.client(), a.client()
            cid = alice.direct_with(bob)["id"]
            due = utcnow() + timedelta(seconds=2.5)
            ids = [scheduled_ok(alice, cid, due, f"m{i}")["id"] for i in range(8)]
            with serve(settings) as b:  # started after: it learns of them from the store
                scheduler = b.services.scheduler
                assert isinstance(scheduler, LocalScheduler) and scheduler.running
                for scheduled_id in ids:
                    assert wait_for(status_of(db, scheduled_id)) == "sent"
        sent = stored_messages(db, cid)
        assert sorted(m["content"] for m in sent) == sorted(f"m{i}" for i in range(8))
        assert [m["seq"] for m in sent] == list(range(1, 9))
        assert sorted(row(db, i)["message_id"] for i in ids) == sorted(m["id"] for m in sent)
        with db.transaction() as conn:
            count = conn.execute(select(func.count()).select_from(messages).where(messages.c.conversation_id == cid))
            assert count.scalar_one() == 8
    finally:
        db.dispose()


def test_a_removed_members_scheduled_message_is_cancelled_not_sent(quick: RunningServer) -> None:
    alice, bob, carol = quick.client(), quick.client(), quick.client()
    cid = alice.group_with(bob, carol)["id"]
    item = scheduled_ok(bob, cid, utcnow() + timedelta(seconds=1.5), "from a former member")
    assert alice.delete(f"/conversations/{cid}/members/{bob.user_id}").status_code == 204
    assert wait_for(status_of(quick.services.db, item["id"])) == "cancelled"
    stored = row(quick.services.db, item["id"])
    assert stored["message_id"] is None and stored["failure_reason"] == "not_a_member"
    assert "from a former member" not in [m["content"] for m in stored_messages(quick.services.db, cid)]
    cancelled = bob.get("/messages/scheduled", params={"status": "cancelled"}).json()
    assert [(i["id"], i["status"], i["failure_reason"]) for i in cancelled] == [
        (item["id"], "cancelled", "not_a_member")
    ]
    assert bob.get("/messages/scheduled").json() == []


def test_edit_and_cancel_only_while_pending(quick: RunningServer) -> None:
    alice, bob = quick.client(), quick.client()
    cid = alice.direct_with(bob)["id"]
    sent = scheduled_ok(alice, cid, utcnow() + timedelta(seconds=1.2), "goes out")
    assert wait_for(status_of(quick.services.db, sent["id"])) == "sent"
    assert_error(
        alice.patch(f"/messages/scheduled/{sent['id']}", {"content": "too late"}), 409, "scheduled_not_pending"
    )
    assert_error(alice.delete(f"/messages/scheduled/{sent['id']}"), 409, "scheduled_not_pending")

    later = scheduled_ok(alice, cid, utcnow() + timedelta(hours=1), "draft one")
    edited = alice.patch(
        f"/messages/scheduled/{later['id']}", {"scheduled_message": {"content": "draft two", "metadata": {"x": 1}}}
    )
    assert edited.status_code == 200, edited.text
    assert edited.json()["data"]["content"] == "draft two" and edited.json()["data"]["metadata"] == {"x": 1}
    assert edited.json()["data"]["scheduled_at"] == later["scheduled_at"]
    assert_error(alice.patch(f"/messages/scheduled/{later['id']}", {"scheduled_at": iso(utcnow())}), 422)
    assert_error(bob.patch(f"/messages/scheduled/{later['id']}", {"content": "not mine"}), 404)
    assert_error(bob.delete(f"/messages/scheduled/{later['id']}"), 404)
    cancelled = alice.delete(f"/messages/scheduled/{later['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["data"]["status"] == "cancelled"
    assert row(quick.services.db, later["id"])["status"] == "cancelled"
    assert_error(alice.patch(f"/messages/scheduled/{later['id']}", {"content": "again"}), 409, "scheduled_not_pending")
    assert_error(alice.delete(f"/messages/scheduled/{later['id']}"), 409, "scheduled_not_pending")
    assert_error(alice.delete("/messages/scheduled/not-a-uuid"), 400, "invalid_id")
    assert_error(alice.delete(f"/messages/scheduled/{cid}"), 404)


def test_fifty_pending_per_user(quick: RunningServer) -> None:
    alice, bob = quick.client(), quick.client()
    cid = alice.direct_with(bob)["id"]
    at = utcnow() + timedelta(days=1)
    made = [scheduled_ok(alice, cid, at + timedelta(seconds=i), f"n{i}") for i in range(50)]
    refused = assert_error(schedule(alice, cid, at, "n50"), 422, "too_many_scheduled")
    assert "scheduled_at" in refused["details"]
    assert len(alice.get("/messages/scheduled").json()) == 50
    scheduled_ok(bob, cid, at, "bob has his own 50")
    assert alice.delete(f"/messages/scheduled/{made[0]['id']}").status_code == 200
    scheduled_ok(alice, cid, at, "room again")
    assert_error(schedule(alice, cid, at, "n51"), 422, "too_many_scheduled")


# --- the REST contract, on the shared server ------------------------------------------------


def test_lead_time_boundaries(server: RunningServer, frozen: datetime) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    refused = assert_error(schedule(alice, cid, frozen + timedelta(seconds=59)), 422, "validation_failed")
    assert "scheduled_at" in refused["details"]
    minute = scheduled_ok(alice, cid, frozen + timedelta(seconds=60))
    assert parse(minute["scheduled_at"]) == frozen + timedelta(seconds=60)
    year = scheduled_ok(alice, cid, frozen + timedelta(days=365))
    assert_error(schedule(alice, cid, frozen + timedelta(days=365, seconds=1)), 422, "validation_failed")
    assert_error(schedule(alice, cid, frozen - timedelta(seconds=1)), 422)
    # times with an offset are the same instant in UTC
    shifted = (frozen + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=2)))
    offset = alice.post(
        "/messages/scheduled", {"conversation_id": cid, "content": "tz", "scheduled_at": shifted.isoformat()}
    )
    assert offset.status_code == 201, offset.text
    assert offset.json()["data"]["scheduled_at"] == iso(frozen + timedelta(minutes=5))
    for item in (minute, year, offset.json()["data"]):  # leave nothing pending in the shared database
        assert alice.delete(f"/messages/scheduled/{item['id']}").status_code == 200


def test_get_answers_a_bare_array_of_the_callers_pending_messages(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    one = alice.direct_with(bob)["id"]
    two = alice.direct_with(carol)["id"]
    now = utcnow()
    late = scheduled_ok(alice, one, now + timedelta(hours=2), "late")
    soon = scheduled_ok(alice, two, now + timedelta(hours=1), "soon")
    scheduled_ok(bob, one, now + timedelta(hours=1), "bob's")
    body = alice.get("/messages/scheduled").json()
    assert isinstance(body, list)
    assert [i["id"] for i in body] == [soon["id"], late["id"]]
    expected_keys = {"id", "conversation_id", "content", "message_type", "scheduled_at", "status", "message_id"}
    assert all(expected_keys <= set(i) and i["status"] == "pending" and i["message_id"] is None for i in body)
    only_one = alice.get("/messages/scheduled", params={"conversation_id": one}).json()
    assert [i["id"] for i in only_one] == [late["id"]]
    assert_error(alice.get("/messages/scheduled", params={"conversation_id": "nope"}), 400, "invalid_id")
    assert_error(alice.get("/messages/scheduled", params={"status": "weird"}), 422)
    assert carol.get("/messages/scheduled").json() == []
    assert_error(httpx.get(server.url + BASE + "/messages/scheduled"), 401)
    for item in (late, soon):
        assert alice.delete(f"/messages/scheduled/{item['id']}").status_code == 200
    assert alice.get("/messages/scheduled").json() == []
    for item in bob.get("/messages/scheduled").json():
        bob.delete(f"/messages/scheduled/{item['id']}")


def test_only_members_schedule_and_bodies_are_validated(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    at = utcnow() + timedelta(hours=1)
    assert_error(schedule(carol, cid, at), 403, "not_a_member")
    assert_error(schedule(alice, str(uuid.uuid4()), at), 404, "conversation_not_found")
    assert_error(schedule(alice, "not-a-uuid", at), 422)
    assert_error(schedule(alice, cid, at, message_type="system"), 422)
    assert_error(schedule(alice, cid, at, client_random=-1), 422)
    assert_error(alice.post("/messages/scheduled", {"conversation_id": cid, "content": "x"}), 422)
    assert_error(
        alice.post("/messages/scheduled", {"conversation_id": cid, "content": "x", "scheduled_at": "tomorrow"}), 422
    )
    assert_error(schedule(alice, cid, at, "x" * (64 * 1024 + 1)), 413)
    # nested under the resource name, and idempotent on client_random
    body = {
        "scheduled_message": {"conversation_id": cid, "content": "once", "scheduled_at": iso(at), "client_random": 4242}
    }
    first = alice.post("/messages/scheduled", body)
    again = alice.post("/messages/scheduled", body)
    assert first.status_code == 201 and again.status_code == 200, (first.text, again.text)
    assert again.json()["data"]["id"] == first.json()["data"]["id"] and again.json()["meta"]["duplicate"] is True
    assert [i["content"] for i in alice.get("/messages/scheduled").json()] == ["once"]
    assert alice.delete(f"/messages/scheduled/{first.json()['data']['id']}").status_code == 200


def test_ten_scheduled_per_hour(pg_url: str, key_path: str) -> None:
    with serve(make_settings(pg_url, key_path)) as limited_server:  # the default limits
        alice, bob = limited_server.client(), limited_server.client()
        cid = alice.direct_with(bob)["id"]
        at = utcnow() + timedelta(hours=3)
        made = [scheduled_ok(alice, cid, at, f"r{i}") for i in range(10)]
        limited = schedule(alice, cid, at, "r10")
        assert_error(limited, 429, "rate_limited")
        assert int(limited.headers["Retry-After"]) >= 1
        bobs = scheduled_ok(bob, cid, at, "bob is not limited by alice")
        assert bob.delete(f"/messages/scheduled/{bobs['id']}").status_code == 200
        for item in made:  # cancelling gives no new allowance
            assert alice.delete(f"/messages/scheduled/{item['id']}").status_code == 200
        assert_error(schedule(alice, cid, at, "r11"), 429, "rate_limited")


# --- the firing code the task targets share ----------------------------------------------------


def test_concurrent_firings_of_one_item_send_it_once(manual: RunningServer) -> None:
    alice, bob = manual.client(), manual.client()
    cid = alice.direct_with(bob)["id"]
    item = scheduled_ok(alice, cid, utcnow() + timedelta(minutes=2), "raced")
    manual.services.clock = lambda: utcnow() + timedelta(minutes=3)
    try:
        barrier = threading.Barrier(8)
        results: list[str] = []

        def fire() -> None:
            barrier.wait()
            results.append(fire_scheduled(manual.services, item["id"]))

        threads = [threading.Thread(target=fire) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
    finally:
        manual.services.clock = utcnow
    assert sorted(results) == ["sent"] + ["skipped"] * 7
    assert [m["content"] for m in stored_messages(manual.services.db, cid)] == ["raced"]


def test_task_targets_need_the_secret_and_are_idempotent(manual: RunningServer, server: RunningServer) -> None:
    alice, bob = manual.client(), manual.client()
    cid = alice.direct_with(bob)["id"]
    item = scheduled_ok(alice, cid, utcnow() + timedelta(minutes=2), "by task")
    target = f"{manual.url}{BASE}/tasks/scheduled/{item['id']}"
    secret = {"X-Whispr-Tasks-Secret": "s3cret"}
    assert_error(httpx.post(target), 401, "invalid_task_secret")
    assert_error(httpx.post(target, headers={"X-Whispr-Tasks-Secret": "guess"}), 401, "invalid_task_secret")
    assert_error(httpx.post(target, headers={"Authorization": f"Bearer {alice.token}"}), 401)
    assert_error(httpx.post(f"{manual.url}{BASE}/tasks/scheduled/nope", headers=secret), 400, "invalid_id")
    early = httpx.post(target, headers=secret)  # not due yet: nothing happens
    assert early.status_code == 200 and early.json()["data"] == {"scheduled_id": item["id"], "result": "skipped"}
    assert stored_messages(manual.services.db, cid) == []
    ephemeral = alice.send(cid, "short-lived", expires_in_seconds=3600)
    manual.services.clock = lambda: utcnow() + timedelta(hours=2)
    try:
        fired = httpx.post(target, headers=secret)
        assert fired.status_code == 200 and fired.json()["data"]["result"] == "sent"
        assert httpx.post(target, headers=secret).json()["data"]["result"] == "skipped"
        bearer = {"Authorization": "Bearer s3cret"}
        expired = httpx.post(f"{manual.url}{BASE}/tasks/expire", headers=bearer)
        assert expired.status_code == 200 and expired.json()["data"] == {"expired": 1}
        assert httpx.post(f"{manual.url}{BASE}/tasks/expire", headers=bearer).json()["data"] == {"expired": 0}
        swept = httpx.post(f"{manual.url}{BASE}/tasks/sweep", headers=secret)
        assert swept.status_code == 200
        assert swept.json()["data"] == {"sent": 0, "expired": 0, "enqueued": 0, "republished": 0}
    finally:
        manual.services.clock = utcnow
    contents = [(m["content"], m["is_expired"]) for m in stored_messages(manual.services.db, cid)]
    assert contents == [("", True), ("by task", False)]
    assert row(manual.services.db, item["id"])["status"] == "sent"
    assert len(recorded(manual, "message_expired", cid)) == 1
    assert ephemeral["expires_at"] is not None
    # a service without WHISPR_TASKS_SECRET refuses every task
    assert_error(httpx.post(f"{server.url}{BASE}/tasks/expire", headers=secret), 403, "tasks_not_configured")
