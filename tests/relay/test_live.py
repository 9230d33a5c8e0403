"""Joining topics and live delivery of messages, over real sockets on the gateway's port."""

from __future__ import annotations

import pytest

from tests.relay.phx import Phx
from tests.support import RunningServer, client_random


def _new_message(content: str = "hello", **fields: object) -> dict[str, object]:
    return {"content": content, "message_type": "text", "client_random": client_random(), **fields}


def test_user_topic_join_replies_user_id_then_pushes_every_conversation(relay: RunningServer) -> None:
    alice, bob, carol = relay.client(), relay.client(), relay.client()
    direct = alice.direct_with(bob)
    group = alice.group_with(bob, carol, name="Trio")
    sock = Phx.open(relay, alice.user_id)
    try:
        assert sock.join_ok(f"user:{alice.user_id}") == {"user_id": alice.user_id}
        summaries = sock.event(f"user:{alice.user_id}", "conversation_summaries")["summaries"]
        rest = alice.get("/conversations").json()["data"]
        assert summaries == rest
        assert {c["id"] for c in summaries} == {direct["id"], group["id"]}
    finally:
        sock.close()


@pytest.mark.parametrize("path", ["/messaging/socket/websocket", "/socket/websocket"])
def test_socket_send_reaches_the_other_member_and_rest_history(relay: RunningServer, path: str) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    a = Phx.open(relay, alice.user_id, path=path)
    b = Phx.open(relay, bob.user_id, path=path)
    try:
        joined = a.join_ok(topic)
        assert joined["conversation"]["id"] == conv["id"]
        assert sorted(joined["conversation"]["member_user_ids"]) == sorted([alice.user_id, bob.user_id])
        b.join_ok(topic)
        b.join_ok(f"user:{bob.user_id}")

        sent = a.ok(topic, "new_message", _new_message("Salut 👋 \u0000 exact"))["message"]
        assert sent["seq"] == 1 and sent["sender_id"] == alice.user_id and sent["status"] == "sent"
        assert sent["content"] == "Salut 👋 \u0000 exact"

        on_conv = b.event(topic, "new_message")
        on_user = b.event(f"user:{bob.user_id}", "new_message")
        assert on_conv == on_user  # each topic delivers its own copy
        history = bob.get(f"/conversations/{conv['id']}/messages").json()["data"]
        assert on_conv == {"message": history[0]}
        mine = alice.get(f"/messages/{sent['id']}").json()["data"]
        assert {k: v for k, v in sent.items() if k != "status"} == {k: v for k, v in mine.items() if k != "status"}
    finally:
        a.close()
        b.close()


def test_rest_send_reaches_the_other_members_sockets_on_every_device(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    phone = Phx.open(relay, bob.user_id, device_id="phone")
    laptop = Phx.open(relay, bob.user_id, device_id="laptop")
    try:
        for sock in (phone, laptop):
            sock.join_ok(topic)
            sock.join_ok(f"user:{bob.user_id}")
        message = alice.send(conv["id"], "over REST")
        expected = {k: v for k, v in message.items() if k != "status"}
        for sock in (phone, laptop):
            assert sock.event(topic, "new_message") == {"message": expected}
            assert sock.event(f"user:{bob.user_id}", "new_message") == {"message": expected}
    finally:
        phone.close()
        laptop.close()


def test_own_send_from_one_device_reaches_the_other_device(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    phone = Phx.open(relay, alice.user_id, device_id="phone")
    laptop = Phx.open(relay, alice.user_id, device_id="laptop")
    try:
        phone.join_ok(topic)
        laptop.join_ok(topic)
        sent = phone.ok(topic, "new_message", _new_message("from my phone"))["message"]
        got = laptop.event(topic, "new_message")["message"]
        assert got["id"] == sent["id"] and got["sender_device_id"] == "phone"
    finally:
        phone.close()
        laptop.close()


def test_duplicate_client_random_returns_the_original_without_a_second_broadcast(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    a, b = Phx.open(relay, alice.user_id), Phx.open(relay, bob.user_id)
    try:
        a.join_ok(topic)
        b.join_ok(topic)
        body = _new_message("once")
        first = a.ok(topic, "new_message", body)["message"]
        again = a.ok(topic, "new_message", body)["message"]
        assert again == first
        assert b.event(topic, "new_message")["message"]["id"] == first["id"]
        assert [m for m in b.barrier() if m.event == "new_message"] == []
        history = bob.get(f"/conversations/{conv['id']}/messages").json()["data"]
        assert [m["id"] for m in history] == [first["id"]]
    finally:
        a.close()
        b.close()
