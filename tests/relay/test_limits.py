"""The relay's limits, each on its own server: pushes per connection, sockets per IP, frame size,
and slow consumers. A breach is an error reply (or a refused upgrade), never a silent drop."""

from __future__ import annotations

import base64
import os
import time

import pytest
from websockets.exceptions import InvalidStatus

from tests.relay.conftest import ServeWith
from tests.relay.phx import Phx
from tests.support import client_random


def _body(content: str) -> dict[str, object]:
    return {"content": content, "message_type": "text", "client_random": client_random()}


def test_pushes_beyond_the_connection_rate_get_rate_limited(serve_with: ServeWith) -> None:
    server = serve_with(ws_pushes_per_minute=1, ws_push_burst=3)  # no refill within the test
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    limited, other = Phx.open(server, alice.user_id), Phx.open(server, alice.user_id)
    try:
        limited.join_ok(topic)  # 1
        limited.ok(topic, "new_message", _body("one"))  # 2
        limited.ok(topic, "new_message", _body("two"))  # 3
        refused = limited.error(topic, "new_message", _body("three"))
        assert refused["reason"] == "rate_limited" and refused["retry_after"] >= 1
        assert refused["details"]["retry_after"] == refused["retry_after"]
        # heartbeats are not pushes, and another connection has its own budget
        assert limited.reply(limited.push("phoenix", "heartbeat", {}, join_ref=None)).payload["status"] == "ok"
        other.join_ok(topic)
        other.ok(topic, "new_message", _body("from elsewhere"))
        contents = [m["content"] for m in alice.get(f"/conversations/{conv['id']}/messages").json()["data"]]
        assert sorted(contents) == ["from elsewhere", "one", "two"]
    finally:
        limited.close()
        other.close()


def test_sockets_per_ip_are_capped(serve_with: ServeWith) -> None:
    server = serve_with(ws_sockets_per_ip=2)
    user = server.client()
    first, second = Phx.open(server, user.user_id), Phx.open(server, user.user_id)
    try:
        with pytest.raises(InvalidStatus) as refused:
            Phx.open(server, user.user_id)
        assert refused.value.response.status_code == 429
        second.close()
        deadline = time.monotonic() + 10  # the server notices the close asynchronously
        while True:
            try:
                third = Phx.open(server, user.user_id)
                break
            except InvalidStatus:
                assert time.monotonic() < deadline, "a closed socket's slot was never freed"
                time.sleep(0.05)
        assert third.reply(third.push("phoenix", "heartbeat", {}, join_ref=None)).payload["status"] == "ok"
        third.close()
    finally:
        first.close()
        second.close()


def test_frame_limit_is_configurable_and_content_limit_has_the_rest_code(serve_with: ServeWith) -> None:
    server = serve_with(ws_max_frame_bytes=2048, max_content_bytes=500)
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    sock = Phx.open(server, alice.user_id)
    try:
        sock.join_ok(topic)
        assert sock.error(topic, "new_message", _body("x" * 3000))["reason"] == "frame_too_large"
        too_long = sock.error(topic, "new_message", _body("é" * 300))  # 600 bytes of content
        assert too_long["reason"] == "content_too_large"
        assert sock.ok(topic, "new_message", _body("é" * 250))["message"]["content"] == "é" * 250
    finally:
        sock.close()


def test_slow_consumer_is_disconnected_and_the_others_get_everything(serve_with: ServeWith) -> None:
    big = 4 * 1024 * 1024
    server = serve_with(
        ws_send_queue_bytes=256 * 1024, max_content_bytes=big, max_request_bytes=big, ws_max_frame_bytes=big
    )
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    # The slow client stops reading: a one-message queue, an 8 KiB TCP window, no compression.
    slow = Phx.open(server, bob.user_id, max_queue=1, compression=None, receive_buffer=4096)
    fast = Phx.open(server, bob.user_id, compression=None)
    sender = Phx.open(server, alice.user_id, compression=None)
    try:
        for sock in (slow, fast, sender):
            sock.join_ok(topic)
        sent = 20  # 670 KB each: far more than the queue and the kernel's buffers hold
        for _ in range(sent):
            content = base64.b64encode(os.urandom(500_000)).decode()  # incompressible
            message = sender.ok(topic, "new_message", _body(content))["message"]
            assert fast.event(topic, "new_message")["message"]["id"] == message["id"]
        assert slow.closed_by_server(timeout=60), "the slow socket was never closed"
        got = [m for m in slow.inbox if m.event == "new_message"]
        assert len(got) < sent
        assert fast.reply(fast.push("phoenix", "heartbeat", {}, join_ref=None)).payload["status"] == "ok"
    finally:
        for sock in (slow, fast, sender):
            sock.close()
