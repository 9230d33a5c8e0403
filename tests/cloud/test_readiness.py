"""Readiness with the Pub/Sub bus, against the official Pub/Sub emulator and PostgreSQL: ready
while its topics answer; once one is gone (deleted under the running gateway) the probe names the
bus as what failed, and it is ready again when the topic is back."""

from __future__ import annotations

import dataclasses
import uuid

import httpx
from google.cloud import pubsub_v1

from shared.devtools.emulators import Emulator
from tests.support import assert_error, make_settings, serve

PROJECT = "whispr-test"


def test_readiness_names_the_bus_until_its_topics_answer(pubsub_emulator: Emulator, pg_url: str, key_path: str) -> None:
    suffix = uuid.uuid4().hex[:8]
    settings = dataclasses.replace(
        make_settings(pg_url, key_path),
        event_bus="pubsub",
        gcp_project=PROJECT,
        pubsub_conversation_topic=f"messaging-ready-events-{suffix}",
        pubsub_domain_topic=f"messaging-ready-domain-{suffix}",
    )
    publisher = pubsub_v1.PublisherClient()
    domain_topic = publisher.topic_path(PROJECT, settings.pubsub_domain_topic)
    for topic in (settings.pubsub_conversation_topic, settings.pubsub_domain_topic):
        publisher.create_topic(name=publisher.topic_path(PROJECT, topic))
    with serve(settings) as running:
        response = httpx.get(f"{running.url}/health/ready", timeout=30)
        assert response.status_code == 200, response.text
        assert response.json()["data"]["checks"] == {"store": "ok", "bus": "ok"}

        publisher.delete_topic(topic=domain_topic)
        body = assert_error(httpx.get(f"{running.url}/health/ready", timeout=30), 503, "not_ready")
        assert body["details"]["failed"] == ["bus"]
        assert body["details"]["checks"]["store"] == "ok"
        assert "bus" in body["error"]

        publisher.create_topic(name=domain_topic)
        response = httpx.get(f"{running.url}/health/ready", timeout=30)
        assert response.status_code == 200, response.text
