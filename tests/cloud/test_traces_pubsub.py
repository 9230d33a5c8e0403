"""Traces through Pub/Sub (shared/telemetry/tracing.py), on the official emulator: a REST send on
a gateway publishing to Pub/Sub (WHISPR_EVENT_BUS=pubsub) reaches a socket on a relay that hears
of it only through its own subscription, and the in-memory exporter holds one trace from the
HTTP entry span to that relay's delivery span. Nothing but the message can carry the context
there (the relay's subscriber runs in the Pub/Sub client's threads): the test also reads the
message's `traceparent` attribute on a subscription of its own and finds the publish span in it.
"""

from __future__ import annotations

import dataclasses
import time
import uuid

from google.cloud import pubsub_v1
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from shared.config import Settings
from shared.devtools.emulators import Emulator
from shared.relay.server import create_relay_app
from shared.telemetry import tracing
from tests.relay.phx import Phx
from tests.support import make_settings, serve
from tests.traces import ancestors, in_trace, one_named


def on_pubsub(settings: Settings, project: str, instance: str) -> Settings:
    return dataclasses.replace(
        settings, event_bus="pubsub", pubsub_create_missing=True, gcp_project=project, instance_id=instance
    )


def test_one_rest_send_is_one_trace_across_pubsub_to_the_relay_delivery(
    pg_url: str, key_path: str, pubsub_emulator: Emulator, exported: InMemorySpanExporter
) -> None:
    project = f"whispr-traces-{uuid.uuid4().hex[:8]}"
    base = make_settings(pg_url, key_path, messages_burst=1000, messages_per_minute=100_000)
    spy = pubsub_v1.SubscriberClient()
    with (
        serve(on_pubsub(base, project, "gateway")) as gateway,
        serve(on_pubsub(base, project, "relay"), app_factory=create_relay_app) as relay,
    ):
        events_topic = f"projects/{project}/topics/{base.pubsub_conversation_topic}"
        spied = spy.create_subscription(name=spy.subscription_path(project, "spy"), topic=events_topic).name
        alice, bob = gateway.client(), gateway.client()
        cid = alice.direct_with(bob)["id"]
        sock = Phx.open(relay, bob.user_id)
        try:
            sock.join_ok(f"conversation:{cid}")
            exported.clear()  # what the joins and the conversation's creation traced
            alice.send(cid, "across pubsub")
            sock.event(f"conversation:{cid}", "new_message", lambda p: p["message"]["content"] == "across pubsub")
        finally:
            sock.close()
            for user in (alice, bob):
                user.close()
        carried = _traceparents_of_new_messages(spy, spied)
    spy.close()
    spans = exported.get_finished_spans()
    http = [s for s in spans if s.kind == tracing.SERVER and s.name == "HTTP POST"]
    assert len(http) == 1 and http[0].parent is None
    trace = in_trace(spans, http[0].context.trace_id)
    delivery = one_named(trace, "deliver new_message")
    assert delivery.kind == tracing.CONSUMER
    # the gateway's REST sends join the relay's group commit (shared/http/sends.py)
    assert ancestors(delivery, trace) == ["publish", "send_batch", "HTTP POST"]
    assert "send_batch" in ancestors(one_named(trace, "db.transaction"), trace)
    publish = one_named(trace, "publish")
    assert len(carried) == 1 and carried[0] is not None  # W3C: version-trace id-parent id-flags
    assert carried[0].split("-")[1:3] == [f"{publish.context.trace_id:032x}", f"{publish.context.span_id:016x}"]


def _traceparents_of_new_messages(spy: pubsub_v1.SubscriberClient, subscription: str) -> list[str | None]:
    """The `traceparent` attribute of each new_message event on the subscription (the events
    before it, e.g. the conversation's creation, are read and passed over)."""
    found: list[str | None] = []
    deadline = time.monotonic() + 30
    while not found and time.monotonic() < deadline:
        for received in spy.pull(subscription=subscription, max_messages=100, timeout=5).received_messages:
            if received.message.attributes["name"] == "new_message":
                found.append(received.message.attributes.get("traceparent"))
    return found
