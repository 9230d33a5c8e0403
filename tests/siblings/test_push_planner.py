"""The push planner's pass (shared/app/notifications.py) against the store, on both backends:
what one pass writes for many messages, what siblings hear of it, and that every event is
planned once, also by instances planning at the same time (PostgreSQL)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from shared.app import conversations, messages, notifications, receipts
from shared.app.services import Services
from shared.bootstrap import build_services
from shared.domain.cloudevents import to_cloudevents
from shared.domain.models import Actor, NewMessage
from shared.ports.siblings import MessageNotification, SiblingUnavailable
from shared.relay.presence import Presence
from shared.storage import notifications as queue
from shared.storage.schema import events, notification_queue, outbox_cursors
from tests.support import client_random, make_settings, new_id, wait_for


@pytest.fixture
def services(store_url: str, key_path: str) -> Iterator[Services]:
    svc = build_services(make_settings(store_url, key_path, scheduler="none"))
    yield svc
    svc.close()


def _recorded(svc: Services, name: str) -> list[Any]:
    with svc.db.transaction() as conn:
        return list(
            conn.execute(
                select(events.c.event_id, events.c.payload, events.c.created_at)
                .where(events.c.name == name)
                .order_by(events.c.id)
            ).all()
        )


def _queued(svc: Services) -> list[tuple[str, str, dict[str, Any]]]:
    with svc.db.transaction() as conn:
        rows = conn.execute(select(notification_queue).order_by(notification_queue.c.id)).all()
    return [(r.dedupe_key, r.kind, r.payload) for r in rows]


def _start_planning_now(svc: Services) -> None:
    """The cursor at the outbox's head: what was recorded before (conversations made) is not owed."""
    with svc.db.transaction() as conn:
        queue.claim_cursor(conn, notifications.CURSOR)


def _send(svc: Services, sender: Actor, conversation_id: str, text: str, **extra: Any) -> dict[str, Any]:
    sent = messages.send_message(svc, sender, conversation_id, NewMessage(text, "text", client_random(), **extra))
    return {"id": sent.message.id, "seq": sent.message.seq}


def test_one_pass_records_one_row_and_siblings_hear_one_message_created_per_message(services: Services) -> None:
    alice, bob, carol, dave, erin = (Actor(new_id()) for _ in range(5))
    group = conversations.create_group(
        services, alice, "Pushes", [bob.user_id, carol.user_id, dave.user_id, erin.user_id], {}
    ).view["id"]
    sealed = conversations.create_group(services, alice, "Sealed", [dave.user_id], {"e2ee": {"enabled": True}}).view[
        "id"
    ]
    muted_until = services.clock() + timedelta(days=1)
    conversations.update_settings(services, carol, group, {"muted_until": muted_until})
    conversations.update_settings(services, erin, group, {"notifications_enabled": False})
    assert services.state is not None
    services.state.connect(bob.user_id, "phone")  # bob has a socket: not pushed
    _start_planning_now(services)

    first = _send(services, alice, group, "secret one", metadata={"mentions": [dave.user_id]})
    second = _send(services, dave, group, "secret two")
    third = _send(services, alice, sealed, "ciphertext")
    receipts.move_watermark(services, dave, group, "read", up_to_seq=second["seq"])

    assert notifications.plan(services) == 4  # three messages and a read
    assert notifications.plan(services) == 0  # nothing new
    (row,) = _recorded(services, "message_recipients")  # one row for the whole pass
    assert "secret" not in str(row.payload) and "ciphertext" not in str(row.payload)
    created = to_cloudevents(row.event_id, "message_recipients", row.payload, None, row.created_at)
    new_message_ids = [r.event_id for r in _recorded(services, "new_message")]
    assert [(key, event["id"]) for key, event in created] == list(
        zip([group, group, sealed], new_message_ids, strict=True)
    )
    by_message = {event["data"]["message"]["id"]: event for _, event in created}
    for _, event in created:
        assert event["type"] == "whispr.messaging.message.created" and event["source"] == "//whispr/messaging"
        assert "content" not in event["data"]["message"] and "metadata" not in event["data"]["message"]
    assert by_message[first["id"]]["data"]["recipient_ids"] == [dave.user_id]  # not bob, carol, erin
    assert by_message[first["id"]]["data"]["message"]["mention_ids"] == [dave.user_id]
    assert by_message[first["id"]]["subject"] == f"conversations/{group}"
    assert by_message[second["id"]]["data"]["recipient_ids"] == [alice.user_id]
    assert by_message[third["id"]]["data"] == {
        "message": by_message[third["id"]]["data"]["message"],
        "recipient_ids": [dave.user_id],
        "encrypted": True,
    }

    queued = _queued(services)
    assert [(key, kind) for key, kind, _ in queued] == [
        (f"message:{new_message_ids[0]}", "message"),
        (f"message:{new_message_ids[1]}", "message"),
        (f"message:{new_message_ids[2]}", "message"),
        (f"read:{_recorded(services, 'conversation_read')[0].event_id}", "read"),
    ]
    push = queued[0][2]
    assert push["recipient_ids"] == [dave.user_id] and push["mention_ids"] == [dave.user_id]
    assert push["sender_id"] == alice.user_id and push["seq"] == first["seq"] and not push["encrypted"]
    assert queued[2][2]["encrypted"] is True
    assert queued[3][2] == {"user_id": dave.user_id, "conversation_id": group, "up_to_seq": second["seq"]}


def test_a_message_planned_again_is_queued_once(services: Services) -> None:
    """Were the cursor to go back (a pass replayed), the pushes are not queued twice: each is
    deduped by its domain event id."""
    alice, bob = Actor(new_id()), Actor(new_id())
    direct = conversations.create_direct(services, alice, bob.user_id).view["id"]
    _start_planning_now(services)
    _send(services, alice, direct, "one")
    _send(services, alice, direct, "two")
    with services.db.transaction() as conn:
        start = conn.execute(select(outbox_cursors.c.txid, outbox_cursors.c.event_id)).one()
    assert notifications.plan(services) == 2
    with services.db.transaction() as conn:
        conn.execute(update(outbox_cursors).values(txid=start.txid, event_id=start.event_id))
    assert notifications.plan(services) == 2
    assert len(_queued(services)) == 2


def test_events_are_planned_once_by_instances_planning_together(store_url: str, key_path: str) -> None:
    """Two instances (own engines, own pools) planning in loops while messages are sent: every
    message is in exactly one `message_recipients` entry, and queued once."""
    if not store_url.startswith("postgresql"):
        pytest.skip("several instances share a database on PostgreSQL")
    settings = make_settings(
        store_url, key_path, scheduler="none", messages_burst=100_000, messages_per_minute=1_000_000
    )
    senders, planners = build_services(settings), [build_services(settings) for _ in range(2)]
    try:
        alice, bob = Actor(new_id()), Actor(new_id())
        direct = conversations.create_direct(senders, alice, bob.user_id).view["id"]
        _start_planning_now(senders)
        sending = threading.Event()
        sending.set()

        def plan_while_sending(svc: Services) -> None:
            while sending.is_set():
                notifications.plan(svc, batch=7)

        threads = [threading.Thread(target=plan_while_sending, args=(svc,)) for svc in planners]
        for thread in threads:
            thread.start()
        try:
            sent = [_send(senders, alice, direct, f"m{i}") for i in range(60)]
        finally:
            sending.clear()
            for thread in threads:
                thread.join(60)
        while notifications.plan(planners[0]):  # what is left after the sends
            pass
        entries = [
            (entry["event_id"], entry["message"]["id"])
            for row in _recorded(senders, "message_recipients")
            for entry in row.payload["messages"]
        ]
        assert Counter(message_id for _, message_id in entries) == Counter(m["id"] for m in sent)
        assert sorted(event_id for event_id, _ in entries) == sorted(
            r.event_id for r in _recorded(senders, "new_message")
        )
        assert sorted(key for key, _, _ in _queued(senders)) == sorted(f"message:{e}" for e, _ in entries)
    finally:
        for svc in (senders, *planners):
            svc.close()


def test_present_users_is_what_user_presence_says_of_each() -> None:
    """The in-process state store's many-user lookup (the planner's one question per pass)."""
    presence = Presence(away_after_seconds=0.0)
    online, away, gone, never = (new_id() for _ in range(4))
    presence.connect(online, "phone")
    presence.connect(away, None)
    presence.tick()  # idle past `away_after`: away (still present)
    presence.activity(presence.local_sessions(online)[0].session_id)
    presence.disconnect(presence.connect(gone, None).session_id)
    users = [online, away, gone, never]
    assert [presence.user_presence(u).status for u in users] == ["online", "away", "offline", "offline"]
    assert presence.present_users(users) == {online, away}
    assert presence.present_users([]) == set()


class Notifications:
    """A notification service that takes calls, is down, or refuses one message for good."""

    def __init__(self) -> None:
        self.taken: list[str] = []
        self.down = False
        self.refuse: set[str] = set()

    def notify_message(self, notification: MessageNotification) -> None:
        if self.down:
            raise SiblingUnavailable("notification-service", "down")
        if notification.message_id in self.refuse:
            raise ValueError("refused")
        self.taken.append(notification.message_id)

    def mark_read(self, user_id: str, conversation_id: str, up_to_seq: int) -> None:
        if self.down:
            raise SiblingUnavailable("notification-service", "down")
        self.taken.append(f"read:{user_id}:{up_to_seq}")


def test_queued_calls_wait_out_an_outage_and_one_refused_for_good_is_dropped(services: Services) -> None:
    notifier = Notifications()
    services.notifier = notifier
    alice, bob = Actor(new_id()), Actor(new_id())
    direct = conversations.create_direct(services, alice, bob.user_id).view["id"]
    _start_planning_now(services)
    kept, refused = _send(services, alice, direct, "kept"), _send(services, alice, direct, "refused")
    notifier.refuse.add(refused["id"])
    notifier.down = True
    assert notifications.run_once(services) == notifications.Delivered(0, True, planned=2)  # both planned
    assert [kind for _, kind, _ in _queued(services)] == ["message", "message"]  # both wait
    notifier.down = False
    for attempt in range(1, notifications.MAX_ATTEMPTS):
        assert notifications.run_once(services).calls == (1 if attempt == 1 else 0)
        with services.db.transaction() as conn:
            attempts = conn.execute(select(notification_queue.c.attempts)).scalars().all()
        assert attempts == [attempt]  # the refused one, tried again at each pass
    assert notifications.run_once(services).calls == 1  # the last attempt: dropped
    assert _queued(services) == [] and notifier.taken == [kept["id"]]


def test_the_worker_looks_again_soon_after_a_pass_that_found_events_and_waits_when_idle(
    services: Services,
) -> None:
    """While passes find events the worker comes back after `BUSY_POLL_SECONDS`, not
    `poll_seconds` (one pass a second at thousands of messages a second was one long stretch of
    Python the event loop waited on); a pass that found nothing waits `poll_seconds`."""
    alice, bob = Actor(new_id()), new_id()
    conversation_id = conversations.create_direct(services, alice, bob).view["id"]
    _start_planning_now(services)
    sent = _send(services, alice, conversation_id, "planned by the first pass")
    worker = notifications.NotificationWorker(services, poll_seconds=60.0)
    worker.start()
    try:
        wait_for(lambda: worker.passes >= 2, "a second pass well before poll_seconds", timeout=10.0)
        (row,) = _recorded(services, "message_recipients")
        created = to_cloudevents(row.event_id, "message_recipients", row.payload, None, row.created_at)
        assert [event["data"]["message"]["id"] for _, event in created] == [sent["id"]]
        time.sleep(1.0)  # the second pass found nothing: the next one is a minute away
        assert worker.passes == 2
    finally:
        worker.stop()
