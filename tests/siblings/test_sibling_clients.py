"""The gRPC clients of user-, media- and notification-service, through the REST API.

The sibling services do not exist here: real gRPC servers on real ports stand in for them
(tests/siblings_support.py), generated from the same protos/ contracts; the gateway runs with
USER/MEDIA/NOTIFICATION_SERVICE_GRPC_ENDPOINT pointing at them."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timezone

import grpc
import pytest

from shared.adapters.grpc_siblings import CircuitBreaker, GrpcNotifier, GrpcUserDirectory, SiblingClient
from shared.ports.siblings import MessageNotification, SiblingUnavailable
from tests.relay.phx import Phx
from tests.siblings_support import Siblings, sibling_servers
from tests.support import RunningServer, assert_error, make_settings, new_id, serve

RESET_SECONDS = 0.5  # the breaker's open period in these tests


@pytest.fixture(scope="module")
def siblings() -> Iterator[Siblings]:
    with sibling_servers() as running:
        yield running


@pytest.fixture(scope="module")
def gateway(pg_url: str, key_path: str, siblings: Siblings) -> Iterator[RunningServer]:
    settings = dataclasses.replace(
        make_settings(pg_url, key_path, messages_burst=100_000, messages_per_minute=1_000_000),
        user_service_grpc_endpoint=siblings.endpoint,
        media_service_grpc_endpoint=siblings.endpoint,
        notification_service_grpc_endpoint=siblings.endpoint,
        sibling_deadline_seconds=2.0,
        sibling_breaker_failures=3,
        sibling_breaker_reset_seconds=RESET_SECONDS,
        scheduler="none",
    )
    with serve(settings) as running:
        yield running


@pytest.fixture(autouse=True)
def healthy(siblings: Siblings, gateway: RunningServer) -> Iterator[None]:
    """Every test starts with answering siblings, a closed circuit and an empty block cache."""
    users = gateway.services.users
    assert isinstance(users, GrpcUserDirectory)
    users.client.breaker.succeeded()
    users._cache.clear()
    for b in (siblings.users.behaviour, siblings.media.behaviour, siblings.notifications.behaviour):
        b.fail_with, b.fail_times, b.hang, b.released = None, None, False, threading.Event()
    yield
    siblings.release()


def _conversations_of(gateway: RunningServer, user_id: str) -> list[dict[str, object]]:
    client = gateway.client(user_id)
    response = client.get("/conversations")
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_a_blocked_pair_cannot_open_a_direct_conversation(gateway: RunningServer, siblings: Siblings) -> None:
    alice, bob = gateway.client(), gateway.client()
    siblings.users.blocks.add((bob.user_id, alice.user_id))  # bob blocks alice
    for who, other in ((alice, bob), (bob, alice)):
        body = assert_error(who.post("/conversations", {"type": "direct", "other_user_id": other.user_id}), 403)
        assert body["code"] == "user_blocked"
    assert _conversations_of(gateway, alice.user_id) == []
    assert _conversations_of(gateway, bob.user_id) == []
    asked = siblings.users.behaviour.requests[-1]
    assert {asked.user_id, *asked.other_user_ids} == {alice.user_id, bob.user_id}


def test_a_block_after_the_conversation_exists_stops_sends_once_the_cache_is_told(
    gateway: RunningServer, siblings: Siblings
) -> None:
    alice, bob = gateway.client(), gateway.client()
    conversation = alice.direct_with(bob)
    alice.send(conversation["id"], "before the block")
    siblings.users.blocks.add((alice.user_id, bob.user_id))
    # what the events function does on user.blocked: drop the cached answer
    gateway.services.users.forget_blocks(alice.user_id, bob.user_id)
    body = {"content": "after", "message_type": "text", "client_random": 42}
    assert_error(bob.post(f"/conversations/{conversation['id']}/messages", body), 403, "user_blocked")
    history = alice.get(f"/conversations/{conversation['id']}/messages").json()["data"]
    assert [m["content"] for m in history] == ["before the block"]
    # groups are not concerned by blocks
    group = alice.group_with(bob)
    alice.send(group["id"], "in a group")
    # unblocked: the event drops the cache again
    siblings.users.blocks.clear()
    gateway.services.users.forget_blocks(bob.user_id)
    bob.send(conversation["id"], "after the unblock")


def test_a_blocked_pair_cannot_send_over_the_socket_either(gateway: RunningServer, siblings: Siblings) -> None:
    alice, bob = gateway.client(), gateway.client()
    conversation = alice.direct_with(bob)
    topic = f"conversation:{conversation['id']}"
    siblings.users.blocks.add((bob.user_id, alice.user_id))
    gateway.services.users.forget_blocks(bob.user_id, alice.user_id)  # as the user.blocked event does
    socket = Phx.open(gateway, alice.user_id)
    try:
        socket.join_ok(topic)
        refused = socket.error(topic, "new_message", {"content": "hi", "client_random": 5})
        assert refused["reason"] == "user_blocked"
    finally:
        socket.close()
    assert alice.get(f"/conversations/{conversation['id']}/messages").json()["data"] == []


def test_user_service_down_refuses_new_direct_conversations_and_opens_then_closes_the_circuit(
    gateway: RunningServer, siblings: Siblings
) -> None:
    alice, bob = gateway.client(), gateway.client()
    users = gateway.services.users
    assert isinstance(users, GrpcUserDirectory)
    behaviour = siblings.users.behaviour
    behaviour.fail_with = grpc.StatusCode.UNAVAILABLE
    new_direct = {"type": "direct", "other_user_id": bob.user_id}
    for _ in range(3):  # sibling_breaker_failures
        body = assert_error(alice.post("/conversations", new_direct), 503, "sibling_unavailable")
        assert body["details"]["service"] == "user-service"
    assert users.client.breaker.state == CircuitBreaker.OPEN
    reached = behaviour.calls
    for _ in range(5):  # open: refused at once, nothing reaches the service
        assert_error(alice.post("/conversations", new_direct), 503, "sibling_unavailable")
    assert behaviour.calls == reached
    assert _conversations_of(gateway, alice.user_id) == []  # nothing created
    # the service recovers: after the open period one probe goes through and closes the circuit
    behaviour.fail_with = None
    deadline = time.monotonic() + 30
    while True:
        response = alice.post("/conversations", new_direct)
        if response.status_code == 201:
            break
        assert_error(response, 503, "sibling_unavailable")
        assert time.monotonic() < deadline, "the circuit never closed"
        time.sleep(RESET_SECONDS / 5)
    assert users.client.breaker.state == CircuitBreaker.CLOSED
    assert behaviour.calls == reached + 1  # the probe


@pytest.mark.parametrize("status", [grpc.StatusCode.NOT_FOUND, grpc.StatusCode.INVALID_ARGUMENT])
def test_a_block_check_user_service_refuses_fails_closed_with_503_not_500(
    gateway: RunningServer, siblings: Siblings, status: grpc.StatusCode
) -> None:
    alice, bob = gateway.client(), gateway.client()
    siblings.users.behaviour.fail_with = status
    body = assert_error(alice.post("/conversations", {"type": "direct", "other_user_id": bob.user_id}), 503)
    assert body["code"] == "sibling_unavailable" and body["details"]["service"] == "user-service"
    assert _conversations_of(gateway, alice.user_id) == []


def test_sends_into_an_existing_direct_conversation_go_on_while_user_service_is_down(
    gateway: RunningServer, siblings: Siblings
) -> None:
    alice, bob = gateway.client(), gateway.client()
    conversation = alice.direct_with(bob)
    gateway.services.users.forget_blocks(alice.user_id)
    siblings.users.behaviour.fail_with = grpc.StatusCode.UNAVAILABLE
    alice.send(conversation["id"], "still delivered")


def test_unavailable_is_retried_and_other_failures_are_not(siblings: Siblings) -> None:
    client = SiblingClient("user-service", siblings.endpoint, deadline=5.0, max_retries=3)
    users = GrpcUserDirectory(client, cache_seconds=0)
    behaviour = siblings.users.behaviour
    try:
        behaviour.fail_with, behaviour.fail_times = grpc.StatusCode.UNAVAILABLE, 2
        before = behaviour.calls
        assert users.is_blocked(new_id(), new_id()) is False
        assert behaviour.calls == before + 3  # two failures, then the answer

        behaviour.fail_with, behaviour.fail_times = grpc.StatusCode.UNAVAILABLE, None
        before = behaviour.calls
        with pytest.raises(SiblingUnavailable):
            users.is_blocked(new_id(), new_id())
        assert behaviour.calls == before + 4  # the call and its 3 retries

        behaviour.fail_with = grpc.StatusCode.INTERNAL
        before = behaviour.calls
        with pytest.raises(SiblingUnavailable):
            users.is_blocked(new_id(), new_id())
        assert behaviour.calls == before + 1
    finally:
        client.close()


def test_a_sibling_that_never_answers_costs_at_most_the_deadline(gateway: RunningServer, siblings: Siblings) -> None:
    deadline = gateway.services.settings.sibling_deadline_seconds
    siblings.users.behaviour.hang = True
    alice, bob = gateway.client(), gateway.client()
    started = time.monotonic()
    response = alice.post("/conversations", {"type": "direct", "other_user_id": bob.user_id})
    elapsed = time.monotonic() - started
    assert_error(response, 503, "sibling_unavailable")
    # an upper bound (the deadline plus one HTTP round trip's allowance), not a speed assertion
    assert elapsed <= deadline + 1.0, elapsed


def test_media_access_is_checked_when_an_attachment_is_linked(gateway: RunningServer, siblings: Siblings) -> None:
    alice, bob = gateway.client(), gateway.client()
    conversation = alice.group_with(bob)
    message = alice.send(conversation["id"])
    path = f"/messages/{message['id']}/attachments"
    allowed, refused, unknown = new_id(), new_id(), new_id()
    siblings.media.refused[refused] = "not shared with this conversation"
    siblings.media.unknown.add(unknown)

    assert alice.post(path, {"media_id": allowed, "media_type": "image"}).status_code == 201
    asked = siblings.media.behaviour.requests[-1]
    assert (asked.media_id, asked.user_id, asked.conversation_id) == (allowed, alice.user_id, conversation["id"])

    body = assert_error(alice.post(path, {"media_id": refused, "media_type": "image"}), 403, "media_access_denied")
    assert "not shared with this conversation" in body["error"]
    assert_error(alice.post(path, {"media_id": unknown, "media_type": "image"}), 403, "media_access_denied")

    siblings.media.behaviour.fail_with = grpc.StatusCode.UNAVAILABLE
    body = assert_error(alice.post(path, {"media_id": new_id(), "media_type": "image"}), 503, "sibling_unavailable")
    assert body["details"]["service"] == "media-service"

    linked = alice.get(path).json()["data"]
    assert [a["media_id"] for a in linked] == [allowed]


def test_media_access_is_checked_in_every_conversation_a_forward_goes_to(
    gateway: RunningServer, siblings: Siblings
) -> None:
    alice, bob, carol = gateway.client(), gateway.client(), gateway.client()
    source, open_target, closed_target = alice.group_with(bob), alice.group_with(carol), alice.direct_with(carol)
    message = alice.send(source["id"], "look")
    media = new_id()
    assert (
        alice.post(f"/messages/{message['id']}/attachments", {"media_id": media, "media_type": "image"}).status_code
        == 201
    )
    siblings.media.refused_in[(media, closed_target["id"])] = "not shareable there"
    refused = alice.post(
        f"/messages/{message['id']}/forward", {"conversation_ids": [open_target["id"], closed_target["id"]]}
    )
    body = assert_error(refused, 403, "media_access_denied")
    assert "not shareable there" in body["error"]
    for target in (open_target, closed_target):  # all checked before anything is sent
        assert alice.get(f"/conversations/{target['id']}/messages").json()["data"] == []
    forwarded = alice.post(f"/messages/{message['id']}/forward", {"conversation_ids": [open_target["id"]]})
    assert forwarded.status_code == 201, forwarded.text
    copy = alice.get(f"/conversations/{open_target['id']}/messages").json()["data"][0]
    assert [a["media_id"] for a in alice.get(f"/messages/{copy['id']}/attachments").json()["data"]] == [media]


def test_notifications_reach_the_notification_service(siblings: Siblings) -> None:
    notifier = GrpcNotifier(SiblingClient("notification-service", siblings.endpoint, deadline=2.0, max_retries=0))
    try:
        sent_at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
        notification = MessageNotification(
            event_id=new_id(),
            message_id=new_id(),
            conversation_id=new_id(),
            sender_id=new_id(),
            recipient_ids=[new_id(), new_id()],
            message_type="text",
            seq=7,
            sent_at=sent_at,
            encrypted=True,
            preview="must not leave",
        )
        notifier.notify_message(notification)
        got = siblings.notifications.behaviour.requests[-1]
        assert got.message_id == notification.message_id and got.seq == 7
        assert list(got.recipient_ids) == list(notification.recipient_ids)
        assert got.preview == ""  # E2E: never any content
        assert got.sent_at.ToDatetime(tzinfo=timezone.utc) == sent_at
        notifier.mark_read(notification.sender_id, notification.conversation_id, 7)
        assert siblings.notifications.behaviour.requests[-1].up_to_seq == 7

        siblings.notifications.behaviour.fail_with = grpc.StatusCode.UNAVAILABLE
        with pytest.raises(SiblingUnavailable):
            notifier.notify_message(notification)
    finally:
        notifier.client.close()
