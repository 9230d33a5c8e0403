"""The gRPC shim on a real port, called with the generated client (shared/protogen): every RPC's
happy path and its errors (with the REST `code` in the status details), caller authentication
(shared secret, Google-style ID tokens verified against a JWKS these tests serve), health,
reflection, and a system message reaching a joined socket of the real relay."""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf import struct_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from shared.app.services import utcnow
from shared.bootstrap import build_services
from shared.devtools.postgres import free_port
from shared.protogen.whispr.messaging.v1 import messaging_pb2 as pb
from shared.protogen.whispr.messaging.v1 import messaging_pb2_grpc
from shared.rpc.server import BackgroundGrpc
from tests.relay.phx import Phx
from tests.support import RunningServer, make_settings, new_id, serve

SECRET = "test-service-secret"
AUDIENCE = "https://messaging-grpc.test"
ISSUER = "https://accounts.google.com"
GOOD = (("x-whispr-service-secret", SECRET),)


class Jwks:
    """A JWKS on a real HTTP port, standing in for Google's certificate endpoint."""

    def __init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key()))
        body = json.dumps({"keys": [{**jwk, "kid": "test-key", "alg": "RS256", "use": "sig"}]}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def token(self, audience: str = AUDIENCE, issuer: str = ISSUER) -> str:
        now = int(time.time())
        claims = {"aud": audience, "iss": issuer, "iat": now, "exp": now + 600, "email": "user-service@test"}
        return jwt.encode(claims, self.key, algorithm="RS256", headers={"kid": "test-key"})


@pytest.fixture(scope="module")
def jwks() -> Iterator[Jwks]:
    served = Jwks()
    yield served
    served.server.shutdown()


@pytest.fixture(scope="module")
def gateway(pg_url: str, key_path: str, jwks: Jwks) -> Iterator[RunningServer]:
    settings = dataclasses.replace(
        make_settings(pg_url, key_path, messages_burst=5, messages_per_minute=1, ws_sockets_per_ip=1000),
        grpc_shared_secret=SECRET,
        grpc_audience=AUDIENCE,
        grpc_jwks_url=jwks.url,
        scheduler="none",
    )
    with serve(settings) as running:
        yield running


@pytest.fixture(scope="module")
def shim(gateway: RunningServer) -> Iterator[BackgroundGrpc]:
    server = BackgroundGrpc(gateway.services, "127.0.0.1", 0)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def channel(shim: BackgroundGrpc) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(f"127.0.0.1:{shim.port}") as opened:
        yield opened


@pytest.fixture(scope="module")
def stub(channel: grpc.Channel) -> messaging_pb2_grpc.MessagingServiceStub:
    return messaging_pb2_grpc.MessagingServiceStub(channel)


def refused(call: Any, request: Any, metadata: Any = GOOD) -> tuple[grpc.StatusCode, str]:
    """Make the call, expect an error: its status code and the REST code in its details."""
    with pytest.raises(grpc.RpcError) as caught:
        call(request, metadata=metadata, timeout=30)
    error = caught.value
    status = rpc_status.from_call(error)
    assert status is not None, "no status details"
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert info.metadata["code"] == info.reason
    return error.code(), info.reason


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    out = struct_pb2.Struct()
    out.update(value)
    return out


# -- authentication, health, reflection --------------------------------------------------------


def test_callers_must_prove_who_they_are(stub: Any, jwks: Jwks) -> None:
    request = pb.GetConversationParticipantsRequest(conversation_id=new_id())
    call = stub.GetConversationParticipants
    assert refused(call, request, metadata=()) == (grpc.StatusCode.UNAUTHENTICATED, "unauthorized")
    wrong_secret = (("x-whispr-service-secret", "guess"),)
    assert refused(call, request, metadata=wrong_secret) == (grpc.StatusCode.UNAUTHENTICATED, "unauthorized")
    wrong_audience = (("authorization", f"Bearer {jwks.token(audience='https://someone-else')}"),)
    assert refused(call, request, metadata=wrong_audience) == (grpc.StatusCode.UNAUTHENTICATED, "unauthorized")
    wrong_issuer = (("authorization", f"Bearer {jwks.token(issuer='https://evil.example')}"),)
    assert refused(call, request, metadata=wrong_issuer) == (grpc.StatusCode.UNAUTHENTICATED, "unauthorized")
    # trusted callers get through to the use case (which does not know this conversation)
    good_token = (("authorization", f"Bearer {jwks.token()}"),)
    assert refused(call, request, metadata=good_token) == (grpc.StatusCode.NOT_FOUND, "conversation_not_found")
    assert refused(call, request) == (grpc.StatusCode.NOT_FOUND, "conversation_not_found")


def test_health_is_serving_without_credentials(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "whispr.messaging.v1.MessagingService"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING


def test_health_is_not_serving_while_the_store_is_unreachable(key_path: str) -> None:
    nowhere = f"postgresql+psycopg://nobody@127.0.0.1:{free_port()}/none"  # nothing listens there
    services = build_services(dataclasses.replace(make_settings(nowhere, key_path), scheduler="none"))
    server = BackgroundGrpc(services, "127.0.0.1", 0)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            health = health_pb2_grpc.HealthStub(channel)
            answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=30)
            assert answer.status == health_pb2.HealthCheckResponse.NOT_SERVING
            stub = messaging_pb2_grpc.MessagingServiceStub(channel)  # open: no auth configured
            request = pb.GetMessageRequest(message_id=new_id())
            assert refused(stub.GetMessage, request, metadata=()) == (grpc.StatusCode.UNAVAILABLE, "store_unavailable")
    finally:
        server.stop()
        services.close()


def test_reflection_lists_the_service(channel: grpc.Channel) -> None:
    """What `grpcurl list` does: ask the reflection service for the services."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    answers = list(
        stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), metadata=GOOD)
    )
    names = {s.name for s in answers[0].list_services_response.service}
    assert {"whispr.messaging.v1.MessagingService", "grpc.health.v1.Health"} <= names
    symbol = reflection_pb2.ServerReflectionRequest(file_containing_symbol="whispr.messaging.v1.MessagingService")
    described = list(stub.ServerReflectionInfo(iter([symbol]), metadata=GOOD))
    assert described[0].file_descriptor_response.file_descriptor_proto


# -- groups and conversation events ----------------------------------------------------------


def test_group_creation_is_idempotent_on_the_group_id(stub: Any, gateway: RunningServer) -> None:
    group_id, creator, admin, member = new_id(), new_id(), new_id(), new_id()
    request = pb.NotifyGroupCreationRequest(
        group_id=group_id,
        name="Climbers",
        creator_id=creator,
        members=[
            pb.GroupMember(user_id=admin, role=pb.MEMBER_ROLE_ADMIN),
            pb.GroupMember(user_id=member),
        ],
        metadata=struct({"origin": "user-service"}),
    )
    first = stub.NotifyGroupCreation(request, metadata=GOOD, timeout=30)
    assert (first.conversation_id, first.created) == (group_id, True)
    again = stub.NotifyGroupCreation(request, metadata=GOOD, timeout=30)
    assert (again.conversation_id, again.created) == (group_id, False)

    seen = gateway.client(creator).get(f"/conversations/{group_id}")
    assert seen.status_code == 200 and seen.json()["data"]["name"] == "Climbers"
    listed = stub.GetConversationParticipants(
        pb.GetConversationParticipantsRequest(conversation_id=group_id), metadata=GOOD, timeout=30
    )
    assert listed.conversation_type == pb.CONVERSATION_TYPE_GROUP
    roles = {p.user_id: p.role for p in listed.participants}
    assert roles == {creator: pb.MEMBER_ROLE_OWNER, admin: pb.MEMBER_ROLE_ADMIN, member: pb.MEMBER_ROLE_MEMBER}

    bad = pb.NotifyGroupCreationRequest(
        group_id="not-a-uuid", name="x", creator_id=creator, members=[request.members[0]]
    )
    assert refused(stub.NotifyGroupCreation, bad) == (grpc.StatusCode.INVALID_ARGUMENT, "invalid_id")
    odd_role = pb.NotifyGroupCreationRequest(
        group_id=new_id(), name="x", creator_id=creator, members=[pb.GroupMember(user_id=admin, role=99)]
    )
    assert refused(stub.NotifyGroupCreation, odd_role) == (grpc.StatusCode.INVALID_ARGUMENT, "validation_failed")
    alone = pb.NotifyGroupCreationRequest(group_id=new_id(), name="x", creator_id=creator)
    assert refused(stub.NotifyGroupCreation, alone) == (grpc.StatusCode.INVALID_ARGUMENT, "validation_failed")
    alice, bob = gateway.client(), gateway.client()
    direct = alice.direct_with(bob)
    taken = pb.NotifyGroupCreationRequest(
        group_id=direct["id"], name="x", creator_id=creator, members=[request.members[0]]
    )
    assert refused(stub.NotifyGroupCreation, taken) == (grpc.StatusCode.ALREADY_EXISTS, "conversation_exists")


def test_conversation_events_are_applied_once_and_broadcast(stub: Any, gateway: RunningServer) -> None:
    owner, friend = gateway.client(), gateway.client()
    group = owner.group_with(friend)
    newcomer = new_id()
    added = pb.NotifyConversationEventRequest(
        conversation_id=group["id"],
        event_type=pb.CONVERSATION_EVENT_TYPE_MEMBER_ADDED,
        actor_id=owner.user_id,
        user_ids=[newcomer],
        event_id=new_id(),
    )
    first = stub.NotifyConversationEvent(added, metadata=GOOD, timeout=30)
    assert first.applied and first.last_seq == group["last_seq"] + 1  # the member_added notice
    replay = stub.NotifyConversationEvent(added, metadata=GOOD, timeout=30)
    assert not replay.applied and replay.last_seq == first.last_seq
    members = {m["user_id"] for m in owner.get(f"/conversations/{group['id']}/members").json()["data"]}
    assert newcomer in members
    history = owner.get(f"/conversations/{group['id']}/messages").json()["data"]
    assert history[-1]["message_type"] == "system" and history[-1]["metadata"]["system"]["user_id"] == newcomer

    removed = pb.NotifyConversationEventRequest(
        conversation_id=group["id"], event_type=pb.CONVERSATION_EVENT_TYPE_MEMBER_REMOVED, user_ids=[newcomer]
    )
    gone = stub.NotifyConversationEvent(removed, metadata=GOOD, timeout=30)
    assert gone.applied
    assert not stub.NotifyConversationEvent(removed, metadata=GOOD, timeout=30).applied
    # the caller retries the first event (its answer was lost) after the removal: same event id,
    # so it is acknowledged and not applied again; the newcomer stays removed, no new notice
    late = stub.NotifyConversationEvent(added, metadata=GOOD, timeout=30)
    assert not late.applied and late.last_seq == gone.last_seq
    members = {m["user_id"] for m in owner.get(f"/conversations/{group['id']}/members").json()["data"]}
    assert newcomer not in members
    # a new event (another id) adding them again is applied
    again = pb.NotifyConversationEventRequest()
    again.CopyFrom(added)
    again.event_id = new_id()
    assert stub.NotifyConversationEvent(again, metadata=GOOD, timeout=30).applied
    assert stub.NotifyConversationEvent(removed, metadata=GOOD, timeout=30).applied  # no id: by effect

    changed = pb.NotifyConversationEventRequest(
        conversation_id=group["id"],
        event_type=pb.CONVERSATION_EVENT_TYPE_SETTINGS_CHANGED,
        settings=struct({"theme": "dark", "name": "Renamed"}),
    )
    assert stub.NotifyConversationEvent(changed, metadata=GOOD, timeout=30).applied
    assert not stub.NotifyConversationEvent(changed, metadata=GOOD, timeout=30).applied
    seen = owner.get(f"/conversations/{group['id']}").json()["data"]
    assert seen["name"] == "Renamed" and seen["metadata"]["theme"] == "dark"

    missing = pb.NotifyConversationEventRequest(
        conversation_id=new_id(), event_type=pb.CONVERSATION_EVENT_TYPE_MEMBER_ADDED, user_ids=[newcomer]
    )
    assert refused(stub.NotifyConversationEvent, missing) == (grpc.StatusCode.NOT_FOUND, "conversation_not_found")
    direct = owner.direct_with(friend)
    into_direct = pb.NotifyConversationEventRequest(
        conversation_id=direct["id"], event_type=pb.CONVERSATION_EVENT_TYPE_MEMBER_ADDED, user_ids=[newcomer]
    )
    assert refused(stub.NotifyConversationEvent, into_direct) == (grpc.StatusCode.INVALID_ARGUMENT, "not_a_group")
    unknown = pb.NotifyConversationEventRequest(conversation_id=group["id"])
    assert refused(stub.NotifyConversationEvent, unknown) == (grpc.StatusCode.INVALID_ARGUMENT, "validation_failed")


# -- messages ----------------------------------------------------------------------------------


def test_system_message_reaches_a_joined_socket_with_the_next_seq(stub: Any, gateway: RunningServer) -> None:
    alice, bob = gateway.client(), gateway.client()
    group = alice.group_with(bob)
    alice.send(group["id"], "before")
    last = stub.GetConversationStats(
        pb.GetConversationStatsRequest(conversation_id=group["id"]), metadata=GOOD, timeout=30
    ).last_seq
    topic = f"conversation:{group['id']}"
    socket = Phx.open(gateway, bob.user_id)
    try:
        socket.join_ok(topic)
        socket.joined(topic)
        request = pb.SendSystemMessageRequest(
            conversation_id=group["id"], action="group_renamed", details=struct({"by": "user-service"}), client_random=7
        )
        answer = stub.SendSystemMessage(request, metadata=GOOD, timeout=30)
        assert not answer.duplicate and answer.message.seq == last + 1
        assert answer.message.message_type == pb.MESSAGE_TYPE_SYSTEM
        delivered = socket.event(topic, "new_message", lambda p: p["message"]["id"] == answer.message.id)
        assert delivered["message"]["seq"] == last + 1
        assert delivered["message"]["metadata"]["system"]["action"] == "group_renamed"
        assert delivered["message"]["metadata"]["system"]["by"] == "user-service"
    finally:
        socket.close()
    retry = stub.SendSystemMessage(request, metadata=GOOD, timeout=30)
    assert retry.duplicate and retry.message.id == answer.message.id

    no_key = pb.SendSystemMessageRequest(conversation_id=group["id"], action="x")
    assert refused(stub.SendSystemMessage, no_key) == (grpc.StatusCode.INVALID_ARGUMENT, "validation_failed")
    nowhere = pb.SendSystemMessageRequest(conversation_id=new_id(), action="x", client_random=1)
    assert refused(stub.SendSystemMessage, nowhere) == (grpc.StatusCode.NOT_FOUND, "conversation_not_found")


def test_system_messages_are_rate_limited_per_conversation(stub: Any, gateway: RunningServer) -> None:
    alice, bob = gateway.client(), gateway.client()
    group = alice.group_with(bob)
    burst = gateway.services.settings.limits.messages_burst
    for n in range(1, burst + 1):
        request = pb.SendSystemMessageRequest(conversation_id=group["id"], action="notice", client_random=n)
        stub.SendSystemMessage(request, metadata=GOOD, timeout=30)
    flood = pb.SendSystemMessageRequest(conversation_id=group["id"], action="notice", client_random=burst + 1)
    assert refused(stub.SendSystemMessage, flood) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "rate_limited")


def test_get_message_and_link_media(stub: Any, gateway: RunningServer) -> None:
    alice, bob, stranger = gateway.client(), gateway.client(), gateway.client()
    group = alice.group_with(bob)
    sent = alice.send(group["id"], "with a photo")

    link = pb.LinkMediaToMessageRequest(
        message_id=sent["id"],
        media_id="media-123",
        media_type=pb.MEDIA_TYPE_IMAGE,
        metadata=struct({"width": 640}),
        conversation_id=group["id"],
        user_id=alice.user_id,
    )
    linked = stub.LinkMediaToMessage(link, metadata=GOOD, timeout=30)
    assert linked.created and linked.attachment.media_id == "media-123"
    assert not stub.LinkMediaToMessage(link, metadata=GOOD, timeout=30).created
    on_rest = alice.get(f"/messages/{sent['id']}/attachments").json()["data"]
    assert [a["media_id"] for a in on_rest] == ["media-123"]

    got = stub.GetMessage(pb.GetMessageRequest(message_id=sent["id"], requester_id=bob.user_id), metadata=GOOD)
    assert got.message.content == "with a photo" and got.message.seq == sent["seq"]
    assert [a.media_id for a in got.message.attachments] == ["media-123"]
    hidden = pb.GetMessageRequest(message_id=sent["id"], requester_id=stranger.user_id)
    assert refused(stub.GetMessage, hidden) == (grpc.StatusCode.NOT_FOUND, "message_not_found")
    assert refused(stub.GetMessage, pb.GetMessageRequest(message_id="42")) == (
        grpc.StatusCode.INVALID_ARGUMENT,
        "invalid_id",
    )

    not_theirs = pb.LinkMediaToMessageRequest(
        message_id=sent["id"], media_id="media-9", media_type=pb.MEDIA_TYPE_IMAGE, user_id=bob.user_id
    )
    assert refused(stub.LinkMediaToMessage, not_theirs) == (grpc.StatusCode.PERMISSION_DENIED, "not_sender")
    elsewhere = pb.LinkMediaToMessageRequest(
        message_id=sent["id"], media_id="media-9", media_type=pb.MEDIA_TYPE_IMAGE, conversation_id=new_id()
    )
    assert refused(stub.LinkMediaToMessage, elsewhere) == (grpc.StatusCode.NOT_FOUND, "message_not_found")
    untyped = pb.LinkMediaToMessageRequest(message_id=sent["id"], media_id="media-9")
    assert refused(stub.LinkMediaToMessage, untyped)[0] == grpc.StatusCode.INVALID_ARGUMENT


def test_conversation_stats(stub: Any, gateway: RunningServer) -> None:
    alice, bob = gateway.client(), gateway.client()
    group = alice.group_with(bob)
    alice.send(group["id"], "one")
    alice.send(group["id"], "two")
    stats = stub.GetConversationStats(
        pb.GetConversationStatsRequest(conversation_id=group["id"], user_id=bob.user_id), metadata=GOOD, timeout=30
    )
    assert (stats.message_count, stats.unread_count, stats.member_count) == (2, 2, 2)
    assert stats.last_seq == 2 and stats.last_activity.ToDatetime(tzinfo=timezone.utc) <= utcnow()
    outsider = pb.GetConversationStatsRequest(conversation_id=group["id"], user_id=new_id())
    assert refused(stub.GetConversationStats, outsider) == (grpc.StatusCode.NOT_FOUND, "member_not_found")


def test_scheduled_messages_fire_once(stub: Any, gateway: RunningServer) -> None:
    alice, bob = gateway.client(), gateway.client()
    group = alice.group_with(bob)
    due = utcnow() + timedelta(minutes=5)
    body = {
        "conversation_id": group["id"],
        "content": "later",
        "message_type": "text",
        "scheduled_at": due.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
    }
    created = alice.post("/messages/scheduled", body)
    assert created.status_code == 201, created.text
    item = created.json()["data"]
    request = pb.SendScheduledMessageRequest(scheduled_message_id=item["id"])
    early = refused(stub.SendScheduledMessage, request)
    assert early == (grpc.StatusCode.INVALID_ARGUMENT, "scheduled_pending")  # not due yet
    gateway.services.clock = lambda: utcnow() + timedelta(minutes=10)
    try:
        fired = stub.SendScheduledMessage(request, metadata=GOOD, timeout=30)
        assert not fired.already_sent and fired.message.content == "later"
        again = stub.SendScheduledMessage(request, metadata=GOOD, timeout=30)
        assert again.already_sent and again.message.id == fired.message.id
    finally:
        gateway.services.clock = utcnow
    missing = pb.SendScheduledMessageRequest(scheduled_message_id=new_id())
    assert refused(stub.SendScheduledMessage, missing) == (grpc.StatusCode.NOT_FOUND, "scheduled_not_found")


def test_cleanup_expires_ephemeral_messages(stub: Any, gateway: RunningServer) -> None:
    alice, bob = gateway.client(), gateway.client()
    group = alice.group_with(bob)
    for n in range(3):
        alice.send(group["id"], f"ephemeral {n}", expires_in_seconds=3600)
    alice.send(group["id"], "kept")
    before = pb.CleanupExpiredMessagesRequest(conversation_id=group["id"], limit=2)
    before.before.FromDatetime(datetime.now(timezone.utc) + timedelta(days=1))
    first = stub.CleanupExpiredMessages(before, metadata=GOOD, timeout=30)
    assert (first.expired_count, first.has_more) == (2, True)
    before.limit = 0
    second = stub.CleanupExpiredMessages(before, metadata=GOOD, timeout=30)
    assert (second.expired_count, second.has_more) == (1, False)
    contents = [m["content"] for m in alice.get(f"/conversations/{group['id']}/messages").json()["data"]]
    assert "kept" in contents and not any(c.startswith("ephemeral") for c in contents)
    assert refused(stub.CleanupExpiredMessages, pb.CleanupExpiredMessagesRequest(limit=-1))[0] == (
        grpc.StatusCode.INVALID_ARGUMENT
    )


def test_participants_include_those_who_left_when_asked(stub: Any, gateway: RunningServer) -> None:
    alice, bob, carol = gateway.client(), gateway.client(), gateway.client()
    group = alice.group_with(bob, carol)
    assert carol.delete(f"/conversations/{group['id']}/members/{carol.user_id}").status_code in (200, 204)
    active = stub.GetConversationParticipants(
        pb.GetConversationParticipantsRequest(conversation_id=group["id"]), metadata=GOOD, timeout=30
    )
    assert {p.user_id for p in active.participants} == {alice.user_id, bob.user_id}
    everyone = stub.GetConversationParticipants(
        pb.GetConversationParticipantsRequest(conversation_id=group["id"], include_inactive=True), metadata=GOOD
    )
    left = [p for p in everyone.participants if p.user_id == carol.user_id]
    assert len(left) == 1 and not left[0].is_active
    assert str(uuid.UUID(everyone.conversation_id)) == group["id"]
