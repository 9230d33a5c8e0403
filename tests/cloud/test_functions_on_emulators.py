"""A function started alone under functions-framework, wired to the Pub/Sub emulator as in GCP:
what it commits reaches another instance through Pub/Sub."""

from __future__ import annotations

import uuid

import httpx

from shared.adapters.pubsub_bus import PubSubBus
from shared.devtools.emulators import Emulator
from tests.api.test_functions_framework import running_function
from tests.cloud.test_pubsub_bus import Collector
from tests.support import RunningServer


def test_the_messages_function_publishes_to_pubsub(server: RunningServer, pubsub_emulator: Emulator) -> None:
    project = f"whispr-fn-{uuid.uuid4().hex[:8]}"
    relay_side = PubSubBus(project, create_missing=True, instance_id="relay-under-test")
    heard = Collector()
    relay_side.subscribe(heard)
    settings = server.services.settings
    env = {
        "DATABASE_URL": settings.database_url,
        "WHISPR_DEV_KEY_PATH": settings.dev_key_path,
        "WHISPR_EVENT_BUS": "pubsub",
        "WHISPR_GCP_PROJECT": project,
        "WHISPR_SCHEDULER": "none",
        "WHISPR_COMPONENT": "function",
        "PUBSUB_EMULATOR_HOST": pubsub_emulator.host,
    }
    try:
        alice, bob = server.client(), server.client()
        conv = alice.direct_with(bob)
        with running_function("messages", env) as url:
            sent = httpx.post(
                f"{url}/messaging/api/v1/conversations/{conv['id']}/messages",
                json={"content": "through pub/sub", "client_random": 5},
                headers={"Authorization": f"Bearer {alice.token}"},
            )
            assert sent.status_code == 201, sent.text
            message_id = sent.json()["data"]["id"]
            events = heard.wait_for(1, timeout=30)
        assert [(e.name, e.payload["message"]["id"]) for e in events] == [("new_message", message_id)]
        assert events[0].topics[0] == f"conversation:{conv['id']}"
    finally:
        relay_side.close()
