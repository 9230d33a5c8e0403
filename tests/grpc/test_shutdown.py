"""Graceful stop (what SIGTERM does, tests/grpc/test_command.py sends the signal itself): health
turns NOT_SERVING, a call in flight finishes within the grace period, and one that outlasts it
is cut at its end. To hold a call in flight, the use case behind GetConversationParticipants is
replaced, in this test only, by one that waits for the test's go."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest

from shared.app import sibling_calls
from shared.app.services import Services
from shared.bootstrap import build_services
from shared.domain.errors import NotFound
from shared.protogen.whispr.messaging.v1 import messaging_pb2 as pb
from shared.protogen.whispr.messaging.v1 import messaging_pb2_grpc
from shared.rpc.server import BackgroundGrpc
from tests.support import make_settings, new_id

GRACE = 2.0


class Held:
    def __init__(self) -> None:
        self.entered = threading.Event()
        self.go = threading.Event()

    def participants(self, svc: Services, conversation_id: str, include_inactive: bool) -> Any:
        self.entered.set()
        self.go.wait(60)
        raise NotFound("conversation not found", code="conversation_not_found")


@pytest.fixture
def held(monkeypatch: pytest.MonkeyPatch) -> Iterator[Held]:
    holder = Held()
    monkeypatch.setattr(sibling_calls, "participants", holder.participants)
    yield holder
    holder.go.set()


@pytest.fixture
def services(pg_url: str, key_path: str) -> Iterator[Services]:
    built = build_services(
        dataclasses.replace(make_settings(pg_url, key_path), scheduler="none", grpc_shutdown_grace_seconds=GRACE)
    )
    yield built
    built.close()


def _call_in_flight(port: int) -> Any:
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        stub = messaging_pb2_grpc.MessagingServiceStub(channel)
        try:
            stub.GetConversationParticipants(
                pb.GetConversationParticipantsRequest(conversation_id=new_id()), timeout=60
            )
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK


def test_a_call_in_flight_finishes_during_the_stop(services: Services, held: Held) -> None:
    server = BackgroundGrpc(services, "127.0.0.1", 0)
    with ThreadPoolExecutor(2) as pool:
        call = pool.submit(_call_in_flight, server.port)
        assert held.entered.wait(30)
        stopping = pool.submit(server.stop)
        assert server.running is not None
        deadline = time.monotonic() + 30
        while not server.running.health.stopping:  # the stop has begun: NOT_SERVING, no new calls
            assert time.monotonic() < deadline
            time.sleep(0.01)
        held.go.set()  # the use case answers while the server stops
        assert call.result(30) == grpc.StatusCode.NOT_FOUND  # its own answer, not a cut connection
        stopping.result(30)
    assert not server.thread.is_alive()


def test_a_call_outlasting_the_grace_period_is_cut(services: Services, held: Held) -> None:
    server = BackgroundGrpc(services, "127.0.0.1", 0)
    with ThreadPoolExecutor(2) as pool:
        call = pool.submit(_call_in_flight, server.port)
        assert held.entered.wait(30)
        server.stop()  # returns once the grace period is over, the call still held
        assert call.result(30) in (grpc.StatusCode.CANCELLED, grpc.StatusCode.UNAVAILABLE)
    assert not server.thread.is_alive()
