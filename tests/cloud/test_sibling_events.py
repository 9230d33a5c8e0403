"""Sibling services' events, end to end on one machine as in GCP: a sibling's topic on the
official Pub/Sub emulator, a push subscription (with a dead-letter topic) to the `events` function
running alone under functions-framework, and a gateway + relay instance on the same PostgreSQL
database and Pub/Sub project, whose sockets hear what the function changed.

user-service does not exist here: the test publishes what it would (docs/events.md), and a real
gRPC server generated from protos/ stands in for its CheckUserBlocks (tests/siblings_support.py)."""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from google.api_core import exceptions as gexc
from google.cloud import pubsub_v1

from shared.devtools.cloud_local import DEAD_LETTER, subscribe_sibling_topics
from shared.devtools.emulators import Emulator
from shared.devtools.postgres import free_port
from tests.relay.phx import Phx
from tests.siblings_support import Siblings, sibling_servers
from tests.support import (
    ROOT,
    RunningServer,
    UserClient,
    assert_error,
    eventually,
    fresh_database,
    make_settings,
    serve,
)

SECRET = "events-s3cret"
SIBLING_SOURCE = "//whispr/user-service"
FUNCTIONS_FRAMEWORK = Path(ROOT) / ".venv" / "bin" / "functions-framework"
FREE = {"messages_burst": 100_000, "messages_per_minute": 1_000_000, "group_creations_per_day": 100_000}


@dataclasses.dataclass
class World:
    siblings: Siblings
    project: str
    gateway: RunningServer
    function_url: str
    function_log: Path
    publisher: pubsub_v1.PublisherClient
    subscriber: pubsub_v1.SubscriberClient
    sibling_topic: str
    dead_letters: str

    def publish(self, kind: str, data: Any, event_id: str | None = None) -> str:
        event_id = event_id or str(uuid.uuid4())
        event = {"specversion": "1.0", "id": event_id, "source": SIBLING_SOURCE, "type": kind, "data": data}
        self.publish_raw(orjson.dumps(event))
        return event_id

    def publish_raw(self, data: bytes) -> None:
        self.publisher.publish(self.sibling_topic, data).result(timeout=30)

    def log_lines(self, needle: str) -> list[str]:
        return [line for line in self.function_log.read_text(errors="replace").splitlines() if needle in line]

    def member_ids(self, client: UserClient, conversation_id: str) -> set[str]:
        response = client.get(f"/conversations/{conversation_id}/members")
        return {m["user_id"] for m in response.json()["data"]} if response.status_code == 200 else set()


@contextlib.contextmanager
def events_function(env: dict[str, str], log: Path) -> Iterator[str]:
    """`functions-framework --target events` in its own process, as Cloud Functions runs it."""
    port = free_port()
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [
                *(str(FUNCTIONS_FRAMEWORK), "--asgi", "--source", str(ROOT / "functions/events/main.py")),
                *("--target", "events", "--host", "127.0.0.1", "--port", str(port)),
            ],
            env={**os.environ, "PYTHONPATH": str(ROOT), **env},
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        eventually(lambda: _answers(url, proc), bool, timeout=30, what="the events function answers")
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _answers(url: str, proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, "the events function exited"
    try:
        httpx.get(url + "/messaging/api/v1/events", timeout=1)
    except httpx.TransportError:
        return False
    return True


@pytest.fixture(scope="module")
def db_url(pg_url: str, key_path: str) -> str:
    return fresh_database(pg_url, f"whispr_sibling_events_{os.getpid()}", key_path)


@pytest.fixture(scope="module")
def siblings() -> Iterator[Siblings]:
    with sibling_servers() as running:
        yield running


@pytest.fixture
def world(db_url: str, key_path: str, pubsub_emulator: Emulator, siblings: Siblings, tmp_path: Path) -> Iterator[World]:
    project = f"whispr-sib-{uuid.uuid4().hex[:8]}"
    settings = dataclasses.replace(
        make_settings(db_url, key_path, **FREE),
        event_bus="pubsub",
        gcp_project=project,
        pubsub_create_missing=True,
        instance_id="relay-under-test",
        scheduler="none",
        tasks_secret=SECRET,
        user_service_grpc_endpoint=siblings.endpoint,
        block_cache_seconds=3600.0,  # only the event makes the gateway ask again
    )
    env = {
        "DATABASE_URL": db_url,
        "WHISPR_DEV_KEY_PATH": key_path,
        "WHISPR_EVENT_BUS": "pubsub",
        "WHISPR_GCP_PROJECT": project,
        "WHISPR_PUBSUB_CREATE_MISSING": "true",
        "WHISPR_SCHEDULER": "none",
        "WHISPR_COMPONENT": "function",
        "WHISPR_TASKS_SECRET": SECRET,
        "PUBSUB_EMULATOR_HOST": pubsub_emulator.host,
    }
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    sibling_topic = publisher.topic_path(project, "user-events")
    dead_letters = subscriber.subscription_path(project, DEAD_LETTER)
    log = tmp_path / "events-function.log"
    with serve(settings) as gateway, events_function(env, log) as url:
        # what terraform/pubsub.tf creates (and cloud-local too), pointed at the function
        subscribe_sibling_topics(project, url, SECRET, {"user": "user-events"}, backoff_seconds=(0, 1))
        try:
            yield World(siblings, project, gateway, url, log, publisher, subscriber, sibling_topic, dead_letters)
        finally:
            with contextlib.suppress(gexc.GoogleAPICallError):
                subscriber.delete_subscription(
                    subscription=subscriber.subscription_path(project, "messaging-events-from-user")
                )
            subscriber.close()
            publisher.stop()


def test_user_blocked_refuses_the_next_send_in_their_direct_conversation(world: World) -> None:
    server = world.gateway
    alice, bob = server.client(), server.client()
    direct = alice.direct_with(bob)["id"]
    alice.send(direct, "before the block")  # the gateway now holds user-service's "not blocked"
    world.siblings.users.blocks.add((bob.user_id, alice.user_id))  # bob blocks alice at user-service
    alice.send(direct, "still going: the cached answer stands until user.blocked arrives")

    world.publish("whispr.user.blocked", {"user_id": bob.user_id, "blocked_user_id": alice.user_id})
    body = {"content": "after the event", "message_type": "text", "client_random": 4242}  # a retry, not new sends
    refused = eventually(
        lambda: alice.post(f"/conversations/{direct}/messages", body),
        lambda r: r.status_code == 403,
        timeout=60,
        what="a refusal",
    )
    assert_error(refused, 403, "user_blocked")
    assert_error(bob.post(f"/conversations/{direct}/messages", {**body, "client_random": 1}), 403, "user_blocked")

    world.siblings.users.blocks.clear()
    world.publish("whispr.user.unblocked", {"user_id": bob.user_id, "blocked_user_id": alice.user_id})
    eventually(
        lambda: alice.post(f"/conversations/{direct}/messages", body),
        lambda r: r.status_code in (200, 201),
        timeout=60,
        what="sending again",
    )


def test_group_updated_renames_and_syncs_members_once_whatever_the_redeliveries(world: World) -> None:
    server = world.gateway
    alice, bob, carol, dave = (server.client() for _ in range(4))
    group = alice.group_with(bob, carol, name="Before")["id"]
    sock = Phx.open(server, bob.user_id)
    topic = f"conversation:{group}"
    sock.join_ok(topic)
    try:
        data = {"conversation_id": group, "name": "After", "member_ids": [alice.user_id, bob.user_id, dave.user_id]}
        event_id = world.publish("whispr.group.updated", data)
        for _ in range(2):  # the same event delivered again (a sibling's retry, Pub/Sub's redelivery)
            world.publish("whispr.group.updated", data, event_id=event_id)

        renamed = sock.event(topic, "conversation_updated", lambda p: p["conversation"]["name"] == "After", 60)
        assert renamed["conversation"]["name"] == "After"
        assert sock.event(topic, "member_removed", lambda p: p["user_id"] == carol.user_id, 30)
        assert sock.event(topic, "member_added", lambda p: p["user_id"] == dave.user_id, 30)
        assert alice.get(f"/conversations/{group}").json()["data"]["name"] == "After"
        assert world.member_ids(alice, group) == {alice.user_id, bob.user_id, dave.user_id}
        # the two redeliveries were heard and changed nothing
        eventually(
            lambda: world.log_lines(event_id),
            lambda lines: sum("again" in ln for ln in lines) >= 2,
            what="redeliveries",
        )
        history = alice.get(f"/conversations/{group}/messages", params={"limit": 50}).json()["data"]
        actions = [m["metadata"]["system"]["action"] for m in history if m["message_type"] == "system"]
        assert actions.count("conversation_renamed") == 1
        assert actions.count("member_removed") == 1 and actions.count("member_added") == 1
    finally:
        sock.close()


def test_user_deleted_leaves_every_conversation_and_closes_direct_ones(world: World) -> None:
    server = world.gateway
    alice, bob, gone = (server.client() for _ in range(3))
    group = alice.group_with(bob, gone, name="Trio")["id"]
    direct = alice.direct_with(gone)["id"]
    kept = gone.send(direct, "written before the account went")
    sock = Phx.open(server, alice.user_id)
    for conversation_id in (group, direct):
        sock.join_ok(f"conversation:{conversation_id}")
    try:
        world.publish("whispr.user.deleted", {"user_id": gone.user_id})
        for conversation_id in (group, direct):
            removed = sock.event(f"conversation:{conversation_id}", "member_removed", None, 60)
            assert removed["user_id"] == gone.user_id
        assert world.member_ids(alice, group) == {alice.user_id, bob.user_id}
        assert_error(gone.get(f"/conversations/{group}/messages"), 403, "not_a_member")
        # the direct conversation keeps its history (their message, under their id) and is closed
        history = alice.get(f"/conversations/{direct}/messages").json()["data"]
        assert [m["id"] for m in history if m["sender_id"] == gone.user_id] == [kept["id"]]
        refused = alice.post(f"/conversations/{direct}/messages", json={"content": "hello?", "client_random": 7})
        assert_error(refused, 403, "conversation_closed")
        assert gone.get("/conversations").json()["data"] == []
    finally:
        sock.close()


def test_malformed_events_are_dead_lettered_and_unknown_ones_acknowledged(world: World) -> None:
    unknown = world.publish("whispr.user.renamed", {"user_id": str(uuid.uuid4())})
    malformed = world.publish("whispr.user.deleted", {"user_id": "not-a-uuid"})
    world.publish_raw(b"this is not JSON")

    dead: list[bytes] = []

    def pull() -> list[bytes]:
        with contextlib.suppress(gexc.DeadlineExceeded):
            response = world.subscriber.pull(subscription=world.dead_letters, max_messages=10, timeout=5)
            if response.received_messages:
                world.subscriber.acknowledge(
                    subscription=world.dead_letters, ack_ids=[m.ack_id for m in response.received_messages]
                )
            dead.extend(m.message.data for m in response.received_messages)
        return dead

    eventually(pull, lambda found: len(found) >= 2, timeout=120, what="two dead letters")
    assert sorted(dead) == sorted([b"this is not JSON", next(d for d in dead if malformed.encode() in d)])
    assert orjson.loads(next(d for d in dead if d != b"this is not JSON"))["id"] == malformed
    assert world.log_lines(unknown) and all(unknown.encode() not in d for d in dead)  # acknowledged, logged
    # the function answered each delivery of the malformed ones, and is still up
    assert httpx.get(world.function_url + "/messaging/api/v1/no-such-route", timeout=5).status_code == 404
