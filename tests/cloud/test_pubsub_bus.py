"""The Pub/Sub event bus against the official Pub/Sub emulator."""

from __future__ import annotations

import dataclasses
import threading
import time
import uuid
from datetime import datetime, timezone

import orjson
from google.cloud import pubsub_v1

from shared.adapters.pubsub_bus import PubSubBus
from shared.devtools.emulators import Emulator
from shared.domain.cloudevents import planned_message
from shared.ports.bus import PublishedEvent


def _event(position: int, conversation_id: str, seq: int, name: str = "new_message") -> PublishedEvent:
    return PublishedEvent(
        position=position,
        event_id=str(uuid.uuid4()),
        name=name,
        topics=(f"conversation:{conversation_id}",),
        payload={"message": {"id": str(uuid.uuid4()), "seq": seq, "content": "secret", "metadata": {}}},
        conversation_id=conversation_id,
        seq=seq,
        created_at=datetime.now(timezone.utc),
    )


class Collector:
    def __init__(self) -> None:
        self.events: list[PublishedEvent] = []
        self.lock = threading.Lock()

    def __call__(self, event: PublishedEvent) -> None:
        with self.lock:
            self.events.append(event)

    def wait_for(self, count: int, timeout: float = 60) -> list[PublishedEvent]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.events) >= count:
                    return list(self.events)
            time.sleep(0.05)
        with self.lock:
            return list(self.events)


def test_every_instance_gets_every_event_once_in_conversation_order(pubsub_emulator: Emulator) -> None:
    project = f"whispr-test-{uuid.uuid4().hex[:8]}"
    publisher = PubSubBus(project, create_missing=True)
    relays = [PubSubBus(project, instance_id=f"relay-{i}") for i in range(2)]
    collectors = [Collector() for _ in relays]
    for relay, collector in zip(relays, collectors, strict=True):
        relay.subscribe(collector)
    try:
        time.sleep(1)  # streaming pulls are open before anything is published
        conversations = [str(uuid.uuid4()) for _ in range(3)]
        events = [_event(i, conversations[i % 3], i // 3 + 1) for i in range(150)]
        for start in range(0, len(events), 10):
            publisher.publish(events[start : start + 10])
        publisher.publish(events[:5])  # a republish (as the outbox sweeper may do): no duplicates
        for collector in collectors:
            got = collector.wait_for(150)
            assert sorted(e.event_id for e in got) == sorted(e.event_id for e in events)
            for cid in conversations:
                seqs = [e.seq for e in got if e.conversation_id == cid]
                assert seqs == list(range(1, 51))
            assert got[0].payload["message"]["content"] == "secret"  # relays get the full event
    finally:
        for relay in relays:
            relay.close()
        publisher.close()


def test_domain_events_are_cloudevents_without_content(pubsub_emulator: Emulator) -> None:
    project = f"whispr-test-{uuid.uuid4().hex[:8]}"
    bus = PubSubBus(project, create_missing=True)
    subscriber = pubsub_v1.SubscriberClient()
    sub = subscriber.subscription_path(project, "siblings")
    subscriber.create_subscription(name=sub, topic=f"projects/{project}/topics/messaging-domain-events")
    try:
        # message.created is what the notification worker records once it knows the recipients
        event = _event(1, str(uuid.uuid4()), 1, name="message_recipients")
        bus.publish([event, _event(2, str(uuid.uuid4()), 1, name="user_typing"), _event(3, str(uuid.uuid4()), 1)])
        received = []
        deadline = time.monotonic() + 30
        while not received and time.monotonic() < deadline:
            response = subscriber.pull(subscription=sub, max_messages=10, timeout=5)
            received += response.received_messages
        assert len(received) == 1  # typing is not a domain event, new_message goes to relays only
        message = received[0].message
        cloud_event = orjson.loads(message.data)
        assert message.attributes["type"] == cloud_event["type"] == "whispr.messaging.message.created"
        assert cloud_event["specversion"] == "1.0" and cloud_event["id"] == event.event_id
        assert "content" not in cloud_event["data"]["message"]
        assert message.ordering_key == event.conversation_id
    finally:
        subscriber.close()
        bus.close()


def test_a_planner_pass_is_published_as_one_message_created_per_message(pubsub_emulator: Emulator) -> None:
    """One `message_recipients` row of a worker pass (shared/app/notifications.py): each message
    its own CloudEvent, id = its `new_message` event id, on its conversation's ordering key."""
    project = f"whispr-test-{uuid.uuid4().hex[:8]}"
    bus = PubSubBus(project, create_missing=True)
    subscriber = pubsub_v1.SubscriberClient()
    sub = subscriber.subscription_path(project, "siblings")
    subscriber.create_subscription(
        request={
            "name": sub,
            "topic": f"projects/{project}/topics/messaging-domain-events",
            "enable_message_ordering": True,
        }
    )
    try:
        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        entries = [
            planned_message(str(uuid.uuid4()), cid, {"id": str(uuid.uuid4()), "content": "secret"}, ["u"], False)
            for cid in (first, second, first)
        ]
        row = dataclasses.replace(
            _event(1, first, 1, name="message_recipients"),
            topics=(),
            conversation_id=None,
            payload={"messages": entries},
        )
        bus.publish([row])
        received = []
        deadline = time.monotonic() + 30
        while len(received) < 3 and time.monotonic() < deadline:
            response = subscriber.pull(subscription=sub, max_messages=10, timeout=5)
            received += response.received_messages
            subscriber.acknowledge(subscription=sub, ack_ids=[r.ack_id for r in response.received_messages])
        got = [
            (r.message.ordering_key, r.message.attributes["conversation_id"], orjson.loads(r.message.data))
            for r in received
        ]
        assert sorted((key, attribute, event["id"]) for key, attribute, event in got) == sorted(
            (entry["conversation_id"], entry["conversation_id"], entry["event_id"]) for entry in entries
        )
        assert all(event["type"] == "whispr.messaging.message.created" for _, _, event in got)
        assert all(b"secret" not in r.message.data for r in received)
        in_first = [event["id"] for key, _, event in got if key == first]
        assert in_first == [entries[0]["event_id"], entries[2]["event_id"]]  # in order on its key
    finally:
        subscriber.close()
        bus.close()


def test_clean_shutdown_deletes_the_instance_subscription(pubsub_emulator: Emulator) -> None:
    project = f"whispr-test-{uuid.uuid4().hex[:8]}"
    bus = PubSubBus(project, create_missing=True, instance_id="gone")
    bus.subscribe(Collector())
    admin = pubsub_v1.SubscriberClient()
    names = [s.name for s in admin.list_subscriptions(project=f"projects/{project}")]
    assert names == [f"projects/{project}/subscriptions/messaging-relay-gone"]
    bus.close()
    assert list(admin.list_subscriptions(project=f"projects/{project}")) == []
    admin.close()


def test_the_trace_context_crosses_pubsub_in_the_message_attributes(pubsub_emulator: Emulator) -> None:
    """What tracing relies on through Pub/Sub (shared/telemetry/tracing.py): the publisher's
    `traceparent` arrives with the event on another instance; an event without one has none."""
    import dataclasses

    project = f"whispr-test-{uuid.uuid4().hex[:8]}"
    publisher = PubSubBus(project, create_missing=True)
    relay = PubSubBus(project, instance_id="relay-traced")
    collector = Collector()
    relay.subscribe(collector)
    try:
        conversation = str(uuid.uuid4())
        traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        traced = dataclasses.replace(_event(1, conversation, 1), trace=traceparent)
        untraced = _event(2, conversation, 2)
        publisher.publish([traced, untraced])
        got = {e.event_id: e for e in collector.wait_for(2)}
        assert got[traced.event_id].trace == traceparent
        assert got[untraced.event_id].trace is None
    finally:
        relay.close()
        publisher.close()
