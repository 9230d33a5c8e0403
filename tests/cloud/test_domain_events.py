"""Every domain event type of integration.md, caused through the REST API and read back from the
`messaging-domain-events` topic of the official Pub/Sub emulator, as a sibling service reads
it: CloudEvents 1.0 JSON, attributes `type` and `conversation_id`, ordering key = conversation
id, and never the content of a message."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from shared.app import notifications
from shared.devtools.emulators import Emulator
from tests.domain.test_recorded_events import INTEGRATION_TYPES
from tests.support import RunningServer, fresh_database, make_settings, serve

SECRET_TEXT = "the secret words nobody else may read"
CIPHERTEXT = "b64:opaque-e2e-envelope-bytes"


@dataclasses.dataclass(frozen=True)
class Received:
    type: str
    attributes: dict[str, str]
    ordering_key: str
    raw: bytes
    event: dict[str, Any]


@pytest.fixture(scope="module")
def db_url(pg_url: str, key_path: str) -> str:
    return fresh_database(pg_url, f"whispr_domain_events_{os.getpid()}", key_path)


@pytest.fixture
def gateway(db_url: str, key_path: str, pubsub_emulator: Emulator) -> Iterator[tuple[RunningServer, str]]:
    project = f"whispr-dom-{uuid.uuid4().hex[:8]}"
    settings = dataclasses.replace(
        make_settings(db_url, key_path),
        event_bus="pubsub",
        gcp_project=project,
        pubsub_create_missing=True,
        scheduler="none",
    )
    with serve(settings) as server:
        yield server, project


def read_all(subscriber: pubsub_v1.SubscriberClient, subscription: str, wanted: set[str]) -> list[Received]:
    got: list[Received] = []
    deadline = time.monotonic() + 60
    while not wanted <= {r.type for r in got} and time.monotonic() < deadline:
        with contextlib.suppress(gexc.DeadlineExceeded):
            response = subscriber.pull(subscription=subscription, max_messages=100, timeout=5)
            if response.received_messages:
                subscriber.acknowledge(
                    subscription=subscription, ack_ids=[m.ack_id for m in response.received_messages]
                )
            for m in response.received_messages:
                event = orjson.loads(m.message.data)
                got.append(
                    Received(event["type"], dict(m.message.attributes), m.message.ordering_key, m.message.data, event)
                )
    return got


def test_every_domain_event_type_is_published_as_a_cloudevent(gateway: tuple[RunningServer, str]) -> None:
    server, project = gateway
    subscriber = pubsub_v1.SubscriberClient()
    subscription = subscriber.subscription_path(project, "sibling-reader")
    subscriber.create_subscription(
        request={
            "name": subscription,
            "topic": f"projects/{project}/topics/messaging-domain-events",
            "enable_message_ordering": True,
        }
    )
    try:
        alice, bob, carol = server.client(), server.client(), server.client()
        group = alice.group_with(bob, name="Plans")["id"]  # conversation.created
        assert alice.post(f"/conversations/{group}/members", json={"user_ids": [carol.user_id]}).status_code == 201
        assert alice.delete(f"/conversations/{group}/members/{carol.user_id}").status_code == 204
        assert alice.put(f"/conversations/{group}", json={"name": "Plans, renamed"}).status_code == 200
        sent = alice.send(group, SECRET_TEXT, metadata={"mentions": [bob.user_id]})
        assert alice.put(f"/messages/{sent['id']}", json={"content": SECRET_TEXT + " (edited)"}).status_code == 200
        assert bob.post(f"/conversations/{group}/read", json={"up_to_seq": sent["seq"]}).status_code == 200
        doomed = alice.send(group, SECRET_TEXT + " soon gone")
        assert alice.delete(f"/messages/{doomed['id']}", params={"delete_for_everyone": "true"}).status_code == 200
        report = bob.post("/reports", json={"message_id": sent["id"], "category": "spam", "reason": "ads"})
        assert report.status_code == 201, report.text
        sanction = alice.post(
            f"/conversations/{group}/sanctions", json={"user_id": bob.user_id, "kind": "mute", "duration_seconds": 60}
        )
        assert sanction.status_code == 201, sanction.text
        e2e = alice.post(
            "/conversations",
            json={
                "type": "group",
                "name": "Sealed",
                "user_ids": [bob.user_id],
                "metadata": {"e2ee": {"enabled": True}},
            },
        ).json()["data"]["id"]
        sealed = alice.send(e2e, CIPHERTEXT)
        notifications.run_once(server.services)  # who is not online: message.created, with them

        got = read_all(subscriber, subscription, set(INTEGRATION_TYPES))
        by_type: dict[str, list[Received]] = {}
        for r in got:
            by_type.setdefault(r.type, []).append(r)
        assert set(INTEGRATION_TYPES) <= set(by_type), sorted(set(INTEGRATION_TYPES) - set(by_type))
        for r in got:
            assert r.event["specversion"] == "1.0" and r.event["source"] == "//whispr/messaging" and r.event["id"]
            assert r.attributes["type"] == r.type
            assert r.ordering_key == r.attributes["conversation_id"]
            assert SECRET_TEXT.encode() not in r.raw and CIPHERTEXT.encode() not in r.raw
        in_group = [r for r in got if r.attributes["conversation_id"] == group]
        assert {r.type for r in in_group} == set(INTEGRATION_TYPES)  # all of them, on the group's ordering key

        created = {
            r.event["data"]["message"]["id"]: r.event["data"] for r in by_type["whispr.messaging.message.created"]
        }
        assert created[sent["id"]]["recipient_ids"] == [bob.user_id]  # alice sent it; bob has no socket
        assert created[sent["id"]]["message"]["mention_ids"] == [bob.user_id]
        assert created[sent["id"]]["message"]["sender_id"] == alice.user_id
        assert created[sealed["id"]]["encrypted"] is True and "content" not in created[sealed["id"]]["message"]
        (read,) = by_type["whispr.messaging.message.read"]
        assert read.event["data"]["user_id"] == bob.user_id and read.event["data"]["up_to_seq"] == sent["seq"]
        (deleted,) = by_type["whispr.messaging.message.deleted"]
        assert deleted.event["data"]["message_id"] == doomed["id"]
        (updated,) = by_type["whispr.messaging.message.updated"]
        assert (
            updated.event["data"]["message"]["id"] == sent["id"] and "content" not in updated.event["data"]["message"]
        )
        (added,) = by_type["whispr.messaging.member.added"]
        (removed,) = by_type["whispr.messaging.member.removed"]
        assert added.event["data"]["user_id"] == removed.event["data"]["user_id"] == carol.user_id
        renamed = [
            r for r in by_type["whispr.messaging.conversation.updated"] if r.attributes["conversation_id"] == group
        ]
        assert renamed[-1].event["data"]["conversation"]["name"] == "Plans, renamed"
        (reported,) = by_type["whispr.messaging.moderation.report_created"]
        assert reported.event["data"]["report"]["message_id"] == sent["id"]
        assert reported.event["data"]["report"]["evidence"]["id"] == sent["id"]  # the evidence, without its content
        (sanctioned,) = by_type["whispr.messaging.moderation.sanction_applied"]
        assert sanctioned.event["data"]["sanction"]["user_id"] == bob.user_id
        assert sanctioned.event["data"]["sanction"]["kind"] == "mute"
        # a conversation's events come in the order they happened
        group_types = [r.type for r in in_group]
        assert group_types.index("whispr.messaging.member.added") < group_types.index("whispr.messaging.member.removed")
    finally:
        subscriber.close()
