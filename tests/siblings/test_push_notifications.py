"""Pushes to members who are not online, through the notification service.

notification-service does not exist here: a real gRPC server generated from protos/ stands in
for it (`NotificationServiceStandIn`, tests/siblings_support.py), on a port of its own so the test
can stop it and start it again on the same port. The gateway (REST and relay sockets, memory
presence) runs its notification worker, as `dev` and the relay do."""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from collections.abc import Iterator
from concurrent import futures
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

import grpc
import pytest

from shared.devtools.postgres import free_port
from shared.protogen.whispr.notification.v1 import notification_pb2_grpc
from shared.storage import notifications as queue
from tests.relay.phx import Phx
from tests.siblings_support import NotificationServiceStandIn
from tests.support import RunningServer, UserClient, eventually, fresh_database, make_settings, serve


@contextmanager
def stand_in(port: int) -> Iterator[NotificationServiceStandIn]:
    """notification-service's stand-in on 127.0.0.1:`port`, until the block ends."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    service = NotificationServiceStandIn()  # type: ignore[abstract]  # (only the RPCs it serves)
    notification_pb2_grpc.add_NotificationServiceServicer_to_server(service, server)
    server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    try:
        yield service
    finally:
        server.stop(None)


@pytest.fixture(scope="module")
def port() -> int:
    return free_port()


@pytest.fixture(scope="module")
def gateway(pg_url: str, key_path: str, port: int) -> Iterator[RunningServer]:
    url = fresh_database(pg_url, f"whispr_pushes_{os.getpid()}", key_path)
    settings = dataclasses.replace(
        make_settings(url, key_path, messages_burst=100_000, messages_per_minute=1_000_000),
        notification_service_grpc_endpoint=f"127.0.0.1:{port}",
        sibling_deadline_seconds=1.0,
        sibling_breaker_reset_seconds=0.5,
        notifications_poll_seconds=0.1,
        notifications_max_backoff_seconds=0.5,
        scheduler="none",
    )
    with serve(settings) as running:
        assert running.services.notifications is not None
        running.services.notifications.start()
        yield running


def pushed(service: NotificationServiceStandIn) -> Counter[str]:
    """SendMessageNotification calls per message id."""
    return Counter(r.message_id for r in list(service.behaviour.requests) if hasattr(r, "recipient_ids"))


def pushes_for(service: NotificationServiceStandIn, message_id: str) -> list[list[str]]:
    return [
        sorted(r.recipient_ids)
        for r in list(service.behaviour.requests)
        if hasattr(r, "recipient_ids") and r.message_id == message_id
    ]


def group(gateway: RunningServer) -> tuple[UserClient, UserClient, UserClient, UserClient, str]:
    alice, bob, carol, dave = (gateway.client() for _ in range(4))
    conversation = alice.group_with(bob, carol, dave, name="Pushes")["id"]
    muted_until = (datetime.now(timezone.utc) + timedelta(days=1)).isoformat()
    assert carol.put(f"/conversations/{conversation}/settings", {"muted_until": muted_until}).status_code == 200
    return alice, bob, carol, dave, conversation


def test_offline_members_get_one_push_per_message_and_reading_clears_them(gateway: RunningServer, port: int) -> None:
    with stand_in(port) as service:
        alice, bob, carol, dave, conversation = group(gateway)
        socket = Phx.open(gateway, bob.user_id)  # bob is online; carol muted it; dave is offline
        try:
            eventually(
                lambda: gateway.services.state.user_presence(bob.user_id).status if gateway.services.state else "",
                lambda status: status == "online",
                what="bob online",
            )
            first = alice.send(conversation, "one", metadata={"mentions": [dave.user_id]})
            second = alice.send(conversation, "two")
            eventually(
                lambda: pushed(service), lambda got: {first["id"], second["id"]} <= got.keys(), what="two pushes"
            )
        finally:
            socket.close()
        eventually(
            lambda: gateway.services.state.user_presence(bob.user_id).status if gateway.services.state else "",
            lambda status: status == "offline",
            what="bob offline",
        )
        third = alice.send(conversation, "three")
        eventually(lambda: pushed(service), lambda got: third["id"] in got, what="the third push")

        assert pushes_for(service, first["id"]) == [[dave.user_id]]  # not bob (online), not carol (muted)
        assert pushes_for(service, second["id"]) == [[dave.user_id]]
        assert pushes_for(service, third["id"]) == [sorted([bob.user_id, dave.user_id])]  # bob went offline
        (request,) = [r for r in service.behaviour.requests if getattr(r, "message_id", "") == first["id"]]
        assert list(request.mention_ids) == [dave.user_id] and request.sender_id == alice.user_id
        assert request.seq == first["seq"] and request.event_id and not request.encrypted and request.preview == ""
        assert all(count == 1 for count in pushed(service).values())
        assert not any(
            carol.user_id in r.recipient_ids for r in service.behaviour.requests if hasattr(r, "recipient_ids")
        )

        assert dave.post(f"/conversations/{conversation}/read", {"up_to_seq": third["seq"]}).status_code == 200
        cleared = eventually(
            lambda: [r for r in list(service.behaviour.requests) if hasattr(r, "up_to_seq")],
            bool,
            what="MarkNotificationsAsRead",
        )
        assert [(r.user_id, r.conversation_id, r.up_to_seq) for r in cleared] == [
            (dave.user_id, conversation, third["seq"])
        ]


def test_pushes_wait_out_an_outage_and_arrive_once(gateway: RunningServer, port: int) -> None:
    with stand_in(port) as service:
        alice, bob, _, dave, conversation = group(gateway)
        before = alice.send(conversation, "before the outage")
        eventually(lambda: pushed(service), lambda got: before["id"] in got, what="a push while it is up")
    # notification-service is down: sends go on, pushes queue up in the database
    during = [alice.send(conversation, f"during the outage {i}") for i in range(5)]
    assert all(m["seq"] for m in during)  # every send succeeded (201, asserted by send)
    eventually(lambda: _queued(gateway), lambda n: n >= len(during), what="the pushes queued")
    with stand_in(port) as service:  # back, on the same port
        eventually(
            lambda: pushed(service), lambda got: {m["id"] for m in during} <= got.keys(), what="the queued pushes"
        )
        eventually(lambda: _queued(gateway), lambda n: n == 0, what="an empty queue")
        assert sorted(pushed(service).items()) == sorted((m["id"], 1) for m in during)  # each once, nothing else
        for m in during:  # nobody has a socket: bob and dave (carol muted it)
            assert pushes_for(service, m["id"]) == [sorted([bob.user_id, dave.user_id])]


def _queued(gateway: RunningServer) -> int:
    with gateway.services.db.transaction() as conn:
        return queue.queued(conn)
