"""The event bus on Google Cloud Pub/Sub.

Layout (architecture.md): "one topic per conversation" is realised as ONE conversation-events
topic published with ordering key = conversation id, i.e. one ordered stream per conversation.
Literal per-conversation topics would hit Pub/Sub's per-project quotas (10,000 topics and
10,000 subscriptions) at a few thousand conversations. Each relay instance owns a subscription
(created at start, expiring when abandoned, deleted on clean shutdown) and filters in code to the
topics its sockets joined (the emulator ignores subscription filters). A second topic carries
CloudEvents for sibling services.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import google.cloud.pubsub_v1 as pubsub_v1  # untyped package: `from google.cloud import` trips mypy
import orjson
from google.api_core import exceptions as gexc

from shared.domain.cloudevents import to_cloudevents
from shared.ports.bus import PublishedEvent, Subscriber

log = logging.getLogger(__name__)

SUBSCRIPTION_TTL_SECONDS = 24 * 3600  # the minimum Pub/Sub allows: abandoned ones go away
PING_TIMEOUT_SECONDS = 5.0  # a readiness probe answers within its own deadline
# Publishing happens in the request that committed the events, so an unreachable Pub/Sub must not
# hold sends: wait at most PUBLISH_TIMEOUT_SECONDS, and after a failure refuse at once for
# PAUSE_AFTER_FAILURE_SECONDS (the events stay in the outbox; the periodic sweep republishes
# them once Pub/Sub answers again). docs/reliability.md, "Pub/Sub unreachable".
PUBLISH_TIMEOUT_SECONDS = 5.0
PAUSE_AFTER_FAILURE_SECONDS = 5.0


class BusUnavailable(ConnectionError):
    """Pub/Sub failed a publish a moment ago: not tried again yet."""


def encode(event: PublishedEvent) -> bytes:
    return orjson.dumps(
        {
            "position": event.position,
            "event_id": event.event_id,
            "name": event.name,
            "topics": list(event.topics),
            "payload": event.payload,
            "conversation_id": event.conversation_id,
            "seq": event.seq,
            "created_at": event.created_at.isoformat(),
        }
    )


def decode(data: bytes) -> PublishedEvent:
    raw = orjson.loads(data)
    return PublishedEvent(
        position=int(raw["position"]),
        event_id=raw["event_id"],
        name=raw["name"],
        topics=tuple(raw["topics"]),
        payload=raw["payload"],
        conversation_id=raw["conversation_id"],
        seq=raw["seq"],
        created_at=datetime.fromisoformat(raw["created_at"]),
    )


class RecentIds:
    """A bounded set of recently seen event ids (at-least-once delivery → drop duplicates)."""

    def __init__(self, size: int = 100_000):
        self._ids: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._size = size
        self._lock = threading.Lock()

    def first_time(self, event_id: str) -> bool:
        with self._lock:
            if event_id in self._ids:
                return False
            self._ids[event_id] = None
            if len(self._ids) > self._size:
                self._ids.popitem(last=False)
            return True


class PubSubBus:
    def __init__(
        self,
        project: str,
        *,
        events_topic: str = "messaging-conversation-events",
        domain_topic: str = "messaging-domain-events",
        subscription_prefix: str = "messaging-relay",
        create_missing: bool = False,
        instance_id: str | None = None,
    ):
        self._publisher = pubsub_v1.PublisherClient(
            publisher_options=pubsub_v1.types.PublisherOptions(enable_message_ordering=True)
        )
        self._subscriber: pubsub_v1.SubscriberClient | None = None
        self._events_topic = self._publisher.topic_path(project, events_topic)
        self._domain_topic = self._publisher.topic_path(project, domain_topic)
        self._subscription = pubsub_v1.SubscriberClient.subscription_path(
            project, f"{subscription_prefix}-{instance_id or uuid.uuid4().hex[:12]}"
        )
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._streaming: Any = None
        self._seen = RecentIds()
        self._paused_until = 0.0  # time.monotonic() before which publishing is refused at once
        if create_missing:
            for topic in (self._events_topic, self._domain_topic):
                with contextlib.suppress(gexc.AlreadyExists):
                    self._publisher.create_topic(name=topic)

    # --- publishing ---------------------------------------------------------------------
    def publish(self, events: Sequence[PublishedEvent]) -> None:
        """Publish and wait: the outbox marks events published only once Pub/Sub has them. Fails
        fast while Pub/Sub is failing (see PAUSE_AFTER_FAILURE_SECONDS)."""
        if time.monotonic() < self._paused_until:
            raise BusUnavailable("Pub/Sub failed a moment ago; the outbox sweep republishes")
        futures = []
        for event in events:
            key = event.conversation_id or ""
            futures.append(
                (
                    key,
                    self._publisher.publish(
                        self._events_topic,
                        encode(event),
                        ordering_key=key,
                        name=event.name,
                        event_id=event.event_id,
                        **({"traceparent": event.trace} if event.trace else {}),
                    ),
                )
            )
            for conversation_id, cloud_event in to_cloudevents(
                event.event_id, event.name, event.payload, event.conversation_id, event.created_at
            ):
                futures.append(
                    (
                        conversation_id or "",
                        self._publisher.publish(
                            self._domain_topic,
                            orjson.dumps(cloud_event),
                            ordering_key=conversation_id or "",
                            type=cloud_event["type"],
                            conversation_id=conversation_id or "",
                        ),
                    )
                )
        deadline = time.monotonic() + PUBLISH_TIMEOUT_SECONDS
        for key, future in futures:
            try:
                future.result(timeout=max(0.0, deadline - time.monotonic()))
            except Exception:
                self._paused_until = time.monotonic() + PAUSE_AFTER_FAILURE_SECONDS
                # an ordering key pauses after a failure; resume it so the sweeper can retry (a
                # publish still retrying, timed out here, has not paused it: nothing to resume)
                for topic in (self._events_topic, self._domain_topic):
                    with contextlib.suppress(RuntimeError):
                        self._publisher.resume_publish(topic, key)
                raise

    def ping(self) -> None:
        """Both topics answer (a missing one is a NotFound), and this instance's pull, once
        started, is still running."""
        for topic in (self._events_topic, self._domain_topic):
            self._publisher.get_topic(request={"topic": topic}, timeout=PING_TIMEOUT_SECONDS)
        streaming = self._streaming
        if streaming is not None and streaming.done():
            raise ConnectionError("the pull from the conversation-events subscription stopped")

    # --- consuming ----------------------------------------------------------------------
    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(subscriber)
            if self._streaming is None:
                self._start_streaming()

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def _start_streaming(self) -> None:
        self._subscriber = pubsub_v1.SubscriberClient()
        with contextlib.suppress(gexc.AlreadyExists):
            self._subscriber.create_subscription(
                request={
                    "name": self._subscription,
                    "topic": self._events_topic,
                    "enable_message_ordering": True,
                    "ack_deadline_seconds": 30,
                    "expiration_policy": {"ttl": {"seconds": SUBSCRIPTION_TTL_SECONDS}},
                    "message_retention_duration": {"seconds": 600},
                }
            )
        self._streaming = self._subscriber.subscribe(self._subscription, self._on_message)

    def _on_message(self, message: Any) -> None:
        try:
            event = decode(message.data)
            traceparent = (message.attributes or {}).get("traceparent")
            if traceparent:  # the trace goes on from the publisher's span
                event = dataclasses.replace(event, trace=traceparent)
        except (ValueError, KeyError, TypeError):
            log.error("dropping an undecodable message %s", message.message_id)
            message.ack()
            return
        if self._seen.first_time(event.event_id):
            with self._lock:
                subscribers = list(self._subscribers)
            for subscriber in subscribers:
                try:
                    subscriber(event)
                except Exception:
                    log.exception("event subscriber failed on %s", event.name)
        message.ack()

    def close(self) -> None:
        """Stop pulling and delete this instance's subscription (a clean shutdown)."""
        with self._lock:
            self._subscribers.clear()
            streaming, self._streaming = self._streaming, None
        if streaming is not None and self._subscriber is not None:
            streaming.cancel()
            with contextlib.suppress(Exception):  # a cancelled pull ends with an error by design
                streaming.result(timeout=10)
            with contextlib.suppress(gexc.NotFound):
                self._subscriber.delete_subscription(subscription=self._subscription)
            self._subscriber.close()
        self._publisher.stop()
