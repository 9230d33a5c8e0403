"""Sender key changes over the socket send path (group commit), as over REST
(tests/api/test_signatures.py): a changed key that verifies is accepted whatever the token,
announced to the other members' sockets, and rate-limited per device."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.api.event_rows import recorded
from tests.api.test_signatures import keys_of, login, public_key, signed_body
from tests.relay.conftest import FREE
from tests.relay.phx import Phx
from tests.support import RunningServer, make_settings, new_id, serve


def _push(sock: Phx, topic: str, key: Ed25519PrivateKey, conversation_id: str, content: str = "signed") -> str | None:
    return sock.push(topic, "new_message", signed_body(key, conversation_id, content))


def _changes(sock: Phx, topic: str) -> list[dict[str, Any]]:
    return [m.payload for m in sock.barrier() if m.topic == topic and m.event == "sender_key_changed"]


def test_socket_sends_change_keys_like_rest(relay: RunningServer) -> None:
    device = f"phone-{new_id()}"
    alice, bob = relay.client(device_id=device), relay.client()
    conv = alice.direct_with(bob)["id"]
    topic, bob_topic = f"conversation:{conv}", f"user:{bob.user_id}"
    first, second, third = (Ed25519PrivateKey.generate() for _ in range(3))
    bob_sock = Phx.open(relay, bob.user_id)
    socks = [bob_sock]
    try:
        bob_sock.join_ok(bob_topic)
        phone = Phx.open(relay, alice.user_id, token=alice.token)
        socks.append(phone)
        phone.join_ok(topic)
        assert phone.reply(_push(phone, topic, first, conv)).payload["status"] == "ok"

        # a re-login within the same second: a new token on the same device, a new socket
        iat = jwt.decode(alice.token, options={"verify_signature": False})["iat"]
        relogged = Phx.open(relay, alice.user_id, token=login(relay, alice.user_id, device, iat).token)
        socks.append(relogged)
        relogged.join_ok(topic)
        reply = relogged.reply(_push(relogged, topic, second, conv, "after re-login")).payload
        assert reply["status"] == "ok", reply
        assert reply["response"]["message"]["sender_public_key"] == public_key(second)
        changed = bob_sock.event(bob_topic, "sender_key_changed")
        assert {"user_id": alice.user_id, "device_id": device}.items() <= changed.items()

        # the same socket and token, a third key (a prekey replenishment)
        assert relogged.reply(_push(relogged, topic, third, conv)).payload["status"] == "ok"
        assert {"user_id": alice.user_id, "device_id": device}.items() <= bob_sock.event(
            bob_topic, "sender_key_changed"
        ).items()
        # a message queued before the change, signed with a replaced key: stored, nothing announced
        reply = phone.reply(_push(phone, topic, first, conv, "queued offline")).payload
        assert reply["status"] == "ok", reply
        assert _changes(bob_sock, bob_topic) == []
        assert keys_of(relay, alice.user_id, device)[-1]["public_key"] == public_key(third)

        # the flood: the per-device budget of changes, then a refusal with retry_after
        left = relay.services.settings.limits.key_change_burst - 2
        for _ in range(left):
            assert relogged.reply(_push(relogged, topic, Ed25519PrivateKey.generate(), conv)).payload["status"] == "ok"
        refused = relogged.reply(_push(relogged, topic, Ed25519PrivateKey.generate(), conv, "too many")).payload
        assert refused["status"] == "error", refused
        assert refused["response"]["reason"] == "key_change_rate_limited"
        assert refused["response"]["retry_after"] >= 1
        assert len(keys_of(relay, alice.user_id, device)) == 3 + left
        assert len(recorded(relay, "sender_key_changed", conv)) == 2 + left
    finally:
        for sock in socks:
            sock.close()


@pytest.fixture
def batched_pair(pg_url: str, key_path: str) -> Iterator[RunningServer]:
    """A gateway whose socket sends go in batches of exactly two (see test_group_commit.py)."""
    settings = dataclasses.replace(
        make_settings(pg_url, key_path, **FREE), send_batch_max=2, send_batch_window_ms=600_000.0, send_batch_parallel=1
    )
    with contextlib.ExitStack() as stack:
        yield stack.enter_context(serve(settings))


def test_a_key_change_inside_one_batch(batched_pair: RunningServer) -> None:
    server = batched_pair
    device = f"phone-{new_id()}"
    alice, bob = server.client(device_id=device), server.client()
    conv = alice.direct_with(bob)["id"]
    topic = f"conversation:{conv}"
    old_key, new_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    alice.send_alone(conv, signed_body(old_key, conv))  # not through the batcher: it counts sends
    # two sockets of the device (pushes of one socket may reach the batcher one at a time): in
    # either order, the batch holds one key change and one send with the key it replaces
    socks = [Phx.open(server, alice.user_id, token=alice.token) for _ in range(2)]
    listener = Phx.open(server, bob.user_id)
    try:
        for sock in socks:
            sock.join_ok(topic)
        listener.join_ok(f"user:{bob.user_id}")
        refs = [_push(socks[0], topic, new_key, conv, "new key"), _push(socks[1], topic, old_key, conv, "old key")]
        replies = [sock.reply(ref).payload for sock, ref in zip(socks, refs, strict=True)]
        assert [r["status"] for r in replies] == ["ok", "ok"], replies
        assert [r["response"]["message"]["sender_public_key"] for r in replies] == [
            public_key(new_key),
            public_key(old_key),
        ]
        assert {"user_id": alice.user_id, "device_id": device}.items() <= listener.event(
            f"user:{bob.user_id}", "sender_key_changed"
        ).items()
        assert [k["public_key"] for k in keys_of(server, alice.user_id, device)] == [
            public_key(old_key),
            public_key(new_key),
        ]
        assert len(recorded(server, "sender_key_changed", conv)) == 1
    finally:
        for sock in [*socks, listener]:
            sock.close()
