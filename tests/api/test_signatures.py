"""Ed25519 signatures and sender keys (rules.md, "Signatures (E2E)"), over REST on PostgreSQL.

The signed bytes are built here from the rule's text, not with the service's own helper."""

from __future__ import annotations

import base64
import itertools
import math
import time
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select, update

from shared.auth.keys import DEV_KID, load_or_create_dev_key
from shared.storage.schema import messages, sender_keys
from tests.api.event_rows import recorded
from tests.relay.phx import Phx
from tests.support import RunningServer, UserClient, assert_error, client_random, new_id


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def public_key(key: Ed25519PrivateKey) -> str:
    return b64(key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))


def sign(key: Ed25519PrivateKey, content: str, conversation_id: str, random: int) -> str:
    """UTF-8(content) ‖ the 16 raw bytes of the conversation UUID ‖ client_random, 4 bytes big-endian."""
    message = content.encode("utf-8") + uuid.UUID(conversation_id).bytes + random.to_bytes(4, "big")
    return b64(key.sign(message))


def signed_body(
    key: Ed25519PrivateKey, conversation_id: str, content: str = "signed hello", random: int | None = None
) -> dict[str, Any]:
    random = client_random() if random is None else random
    return {
        "content": content,
        "message_type": "text",
        "client_random": random,
        "signature": sign(key, content, conversation_id, random),
        "sender_public_key": public_key(key),
    }


def login(server: RunningServer, user_id: str, device_id: str, iat: int) -> UserClient:
    """A client whose token says it logged in at `iat` on `device_id` (as the auth service would mint it)."""
    claims = {"sub": user_id, "deviceId": device_id, "iat": iat, "exp": iat + 3600, "typ": "access"}
    key = load_or_create_dev_key(server.services.settings.dev_key_path)
    return UserClient(server, user_id, jwt.encode(claims, key, algorithm="ES256", headers={"kid": DEV_KID}))


def keys_of(server: RunningServer, user_id: str, device_id: str) -> list[dict[str, Any]]:
    """The device's key history, oldest first."""
    with server.services.db.transaction() as conn:
        rows = conn.execute(
            select(sender_keys.c.public_key, sender_keys.c.first_seen_at, sender_keys.c.replaced_at)
            .where(sender_keys.c.user_id == user_id, sender_keys.c.device_id == device_id)
            .order_by(sender_keys.c.id)
        )
        return [dict(r._mapping) for r in rows]


def stored_count(server: RunningServer, conversation_id: str) -> int:
    with server.services.db.transaction() as conn:
        return len(conn.execute(select(messages.c.id).where(messages.c.conversation_id == conversation_id)).all())


def next_login_after(seconds: float) -> int:
    """The first whole-second `iat` after `seconds`, once the clock has reached it (at most 1 s)."""
    iat = math.floor(seconds) + 1
    while time.time() < iat:
        time.sleep(min(0.05, iat - time.time()))
    return iat


def setup(server: RunningServer, iat: int | None = None) -> tuple[UserClient, UserClient, dict[str, Any], str]:
    device = f"phone-{new_id()}"
    alice = login(server, new_id(), device, int(time.time()) if iat is None else iat)
    bob = server.client()
    return alice, bob, alice.direct_with(bob), device


def test_a_valid_signature_is_accepted_and_the_key_recorded(server: RunningServer) -> None:
    alice, bob, conv, device = setup(server)
    key = Ed25519PrivateKey.generate()
    body = signed_body(key, conv["id"], "Bonjour ✓ 👋")
    response = alice.post(f"/conversations/{conv['id']}/messages", body)
    assert response.status_code == 201, response.text
    sent = response.json()["data"]
    assert (sent["signature"], sent["sender_public_key"]) == (body["signature"], body["sender_public_key"])
    assert sent["sender_device_id"] == device
    seen = bob.get(f"/conversations/{conv['id']}/messages").json()["data"][0]
    assert (seen["content"], seen["signature"], seen["sender_public_key"]) == (
        "Bonjour ✓ 👋",
        body["signature"],
        body["sender_public_key"],
    )
    history = keys_of(server, alice.user_id, device)
    assert [(k["public_key"], k["replaced_at"]) for k in history] == [(public_key(key), None)]
    # the first key is no change: nothing to announce
    assert recorded(server, "sender_key_changed", conv["id"]) == []
    # the same key again is fine, and records nothing new
    again = alice.post(f"/conversations/{conv['id']}/messages", signed_body(key, conv["id"], "again"))
    assert again.status_code == 201, again.text
    assert len(keys_of(server, alice.user_id, device)) == 1


def test_bad_signatures_are_422_invalid_signature_and_store_nothing(server: RunningServer) -> None:
    alice, _, conv, device = setup(server)
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    other_conv = str(uuid.uuid4())
    random = client_random()
    good = signed_body(key, conv["id"], "the text", random)
    bad_bodies = [
        {**good, "signature": sign(other, "the text", conv["id"], random)},  # another key signed it
        {**good, "content": "the other text"},  # not what was signed
        {**good, "client_random": (random + 1) % 2**32},  # another client_random
        {**good, "signature": sign(key, "the text", other_conv, random)},  # signed for another conversation
        {**good, "signature": sign(key, "the text" + conv["id"], conv["id"], random)},  # the id as text
        {**good, "signature": "not base64!"},
        {**good, "sender_public_key": "not base64!"},
        {**good, "signature": b64(b"\x00" * 63)},  # wrong lengths
        {**good, "sender_public_key": b64(b"\x00" * 31)},
        {**good, "sender_public_key": public_key(other)},
        {k: v for k, v in good.items() if k != "sender_public_key"},  # one without the other
        {k: v for k, v in good.items() if k != "signature"},
    ]
    for body in bad_bodies:
        response = alice.post(f"/conversations/{conv['id']}/messages", body)
        assert_error(response, 422, "invalid_signature")
    assert stored_count(server, conv["id"]) == 0
    assert keys_of(server, alice.user_id, device) == []
    # the control: the good one goes through
    assert alice.post(f"/conversations/{conv['id']}/messages", good).status_code == 201


def test_the_first_key_is_recorded_only_after_its_signature_verifies(server: RunningServer) -> None:
    alice, _, conv, device = setup(server)
    attacker_key, real_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    # a forged first message: the attacker's key with a signature that does not verify
    forged = {**signed_body(attacker_key, conv["id"]), "signature": sign(real_key, "x", conv["id"], 1)}
    assert_error(alice.post(f"/conversations/{conv['id']}/messages", forged), 422, "invalid_signature")
    assert keys_of(server, alice.user_id, device) == []
    # the device's real first key is therefore not a "second key": it is accepted and recorded
    response = alice.post(f"/conversations/{conv['id']}/messages", signed_body(real_key, conv["id"]))
    assert response.status_code == 201, response.text
    assert [k["public_key"] for k in keys_of(server, alice.user_id, device)] == [public_key(real_key)]
    # a correctly signed other key from the same authenticated device is a key change (the token is
    # the authority): accepted, and announced, so the change is never silent
    response = alice.post(f"/conversations/{conv['id']}/messages", signed_body(attacker_key, conv["id"]))
    assert response.status_code == 201, response.text
    assert len(recorded(server, "sender_key_changed", conv["id"])) == 1


def test_a_relogin_in_the_same_second_with_a_new_key_is_accepted_and_announced(server: RunningServer) -> None:
    """The real client's flow: a new identity key at every login and prekey replenishment, on the
    same device id, within the second of its last message, with a new token or the same one."""
    iat = int(time.time())
    alice, bob, conv, device = setup(server, iat)
    path = f"/conversations/{conv['id']}/messages"
    keys = [Ed25519PrivateKey.generate() for _ in range(3)]
    bob_socket = Phx.open(server, bob.user_id)
    try:
        bob_socket.join_ok(f"user:{bob.user_id}")
        assert alice.post(path, signed_body(keys[0], conv["id"], "with key 1")).status_code == 201

        relogged = login(server, alice.user_id, device, iat)  # a new token, issued in the same second
        response = relogged.post(path, signed_body(keys[1], conv["id"], "with key 2"))
        assert response.status_code == 201, response.text
        assert response.json()["data"]["sender_public_key"] == public_key(keys[1])
        changed = bob_socket.event(f"user:{bob.user_id}", "sender_key_changed")
        assert {"user_id": alice.user_id, "device_id": device}.items() <= changed.items()

        # a prekey replenishment: a third key on the very same token
        response = relogged.post(path, signed_body(keys[2], conv["id"], "with key 3"))
        assert response.status_code == 201, response.text
        changed = bob_socket.event(f"user:{bob.user_id}", "sender_key_changed")
        assert {"user_id": alice.user_id, "device_id": device}.items() <= changed.items()
    finally:
        bob_socket.close()

    history = keys_of(server, alice.user_id, device)
    assert [k["public_key"] for k in history] == [public_key(k) for k in keys]
    assert [k["replaced_at"] is None for k in history] == [False, False, True]
    for older, newer in itertools.pairwise(history):
        assert older["first_seen_at"] <= older["replaced_at"] <= newer["first_seen_at"]
    assert len(recorded(server, "sender_key_changed", conv["id"])) == 2
    seen = bob.get(path).json()["data"]
    assert [(m["content"], m["sender_public_key"]) for m in reversed(seen)] == [
        ("with key 1", public_key(keys[0])),
        ("with key 2", public_key(keys[1])),
        ("with key 3", public_key(keys[2])),
    ]


def test_a_burst_of_key_changes_past_the_limit_is_refused(server: RunningServer) -> None:
    alice, _, conv, device = setup(server)
    path = f"/conversations/{conv['id']}/messages"
    burst = server.services.settings.limits.key_change_burst
    assert alice.post(path, signed_body(Ed25519PrivateKey.generate(), conv["id"])).status_code == 201  # first key
    for _ in range(burst):
        response = alice.post(path, signed_body(Ed25519PrivateKey.generate(), conv["id"]))
        assert response.status_code == 201, response.text
    current = keys_of(server, alice.user_id, device)[-1]["public_key"]

    flood = alice.post(path, signed_body(Ed25519PrivateKey.generate(), conv["id"], "one key too many"))
    error = assert_error(flood, 429, "key_change_rate_limited")
    assert int(flood.headers["Retry-After"]) >= 1 and error["details"]["retry_after"] >= 1
    # refused whole: no message, no key, no announcement
    assert stored_count(server, conv["id"]) == 1 + burst
    assert len(keys_of(server, alice.user_id, device)) == 1 + burst
    assert len(recorded(server, "sender_key_changed", conv["id"])) == burst
    # the device's current key still signs; unsigned messages still go; another device has its own budget
    assert keys_of(server, alice.user_id, device)[-1]["public_key"] == current
    assert (
        alice.post(path, {"content": "plain", "message_type": "text", "client_random": client_random()}).status_code
        == 201
    )
    tablet = login(server, alice.user_id, f"tablet-{new_id()}", int(time.time()))
    for _ in range(2):
        assert tablet.post(path, signed_body(Ed25519PrivateKey.generate(), conv["id"])).status_code == 201


def test_a_replaced_key_coming_back_is_accepted_for_a_day_without_becoming_current_again(
    server: RunningServer,
) -> None:
    """A message queued offline before a re-login arrives signed with the key the device has just
    replaced: it is stored as signed (recipients check it against that key), the device's current
    key stays the new one and nothing is announced. After the grace period, it is refused."""
    alice, bob, conv, device = setup(server)
    old_key, new_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    path = f"/conversations/{conv['id']}/messages"
    assert alice.post(path, signed_body(old_key, conv["id"], "before")).status_code == 201
    assert alice.post(path, signed_body(new_key, conv["id"], "after re-login")).status_code == 201

    queued = alice.post(path, signed_body(old_key, conv["id"], "queued offline"))
    assert queued.status_code == 201, queued.text
    assert queued.json()["data"]["sender_public_key"] == public_key(old_key)
    history = keys_of(server, alice.user_id, device)
    assert [(k["public_key"], k["replaced_at"] is None) for k in history] == [
        (public_key(old_key), False),
        (public_key(new_key), True),
    ]
    assert len(recorded(server, "sender_key_changed", conv["id"])) == 1  # the one real change
    assert alice.post(path, signed_body(new_key, conv["id"])).status_code == 201
    assert len(recorded(server, "sender_key_changed", conv["id"])) == 1
    # a replaced key that signs must still verify
    forged = {**signed_body(old_key, conv["id"], "forged"), "content": "not what was signed"}
    assert_error(alice.post(path, forged), 422, "invalid_signature")

    grace = server.services.settings.limits.replaced_key_grace_seconds
    with server.services.db.transaction() as conn:  # the replacement was longer ago than the grace
        conn.execute(
            update(sender_keys)
            .where(sender_keys.c.user_id == alice.user_id, sender_keys.c.public_key == public_key(old_key))
            .values(replaced_at=datetime.now(timezone.utc) - timedelta(seconds=grace + 60))
        )
    late = alice.post(path, signed_body(old_key, conv["id"], "far too late"))
    error = assert_error(late, 403, "key_replaced")
    assert public_key(old_key) not in error["error"]
    contents = [m["content"] for m in bob.get(path).json()["data"]]
    assert "queued offline" in contents and "far too late" not in contents
    assert keys_of(server, alice.user_id, device)[-1]["public_key"] == public_key(new_key)


def test_another_device_of_the_same_user_has_its_own_key(server: RunningServer) -> None:
    alice, _, conv, device = setup(server)
    tablet = login(server, alice.user_id, f"tablet-{new_id()}", int(time.time()))
    phone_key, tablet_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    path = f"/conversations/{conv['id']}/messages"
    assert alice.post(path, signed_body(phone_key, conv["id"])).status_code == 201
    assert tablet.post(path, signed_body(tablet_key, conv["id"])).status_code == 201
    assert alice.post(path, signed_body(phone_key, conv["id"])).status_code == 201
    assert [k["public_key"] for k in keys_of(server, alice.user_id, device)] == [public_key(phone_key)]
    assert recorded(server, "sender_key_changed", conv["id"]) == []


def test_a_new_key_after_a_new_login_is_accepted_recorded_and_announced(server: RunningServer) -> None:
    alice, bob, conv, device = setup(server, int(time.time()) - 60)
    old_key, new_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    path = f"/conversations/{conv['id']}/messages"
    assert alice.post(path, signed_body(old_key, conv["id"])).status_code == 201
    first_seen = keys_of(server, alice.user_id, device)[0]["first_seen_at"].timestamp()

    relogged = login(server, alice.user_id, device, next_login_after(first_seen))
    response = relogged.post(path, signed_body(new_key, conv["id"], "after login"))
    assert response.status_code == 201, response.text
    assert response.json()["data"]["sender_public_key"] == public_key(new_key)

    history = keys_of(server, alice.user_id, device)
    assert [k["public_key"] for k in history] == [public_key(old_key), public_key(new_key)]
    assert history[0]["replaced_at"] is not None and history[1]["replaced_at"] is None
    assert history[0]["replaced_at"] <= history[1]["first_seen_at"]

    announced = recorded(server, "sender_key_changed", conv["id"])
    assert len(announced) == 1
    assert {"user_id": alice.user_id, "device_id": device}.items() <= announced[0]["payload"].items()
    assert f"user:{bob.user_id}" in announced[0]["topics"]
    assert f"conversation:{conv['id']}" in announced[0]["topics"]

    # the new key keeps working, with no further announcement
    assert relogged.post(path, signed_body(new_key, conv["id"])).status_code == 201
    assert len(recorded(server, "sender_key_changed", conv["id"])) == 1
    contents = [m["content"] for m in bob.get(path).json()["data"]]
    assert "after login" in contents and len(contents) == 3


def test_a_signed_message_is_edited_only_with_a_valid_new_signature(server: RunningServer) -> None:
    alice, bob, conv, _ = setup(server)
    key = Ed25519PrivateKey.generate()
    random = client_random()
    sent = alice.post(f"/conversations/{conv['id']}/messages", signed_body(key, conv["id"], "v1", random))
    message_id = sent.json()["data"]["id"]
    path = f"/messages/{message_id}"
    assert_error(alice.put(path, {"content": "v2"}), 422)
    assert_error(
        alice.put(path, {"content": "v2", "signature": sign(key, "v1", conv["id"], random)}), 422, "invalid_signature"
    )
    other = Ed25519PrivateKey.generate()
    assert_error(
        alice.put(path, {"content": "v2", "signature": sign(other, "v2", conv["id"], random)}), 422, "invalid_signature"
    )
    assert bob.get(path).json()["data"]["content"] == "v1"
    edited = alice.put(path, {"content": "v2", "signature": sign(key, "v2", conv["id"], random)})
    assert edited.status_code == 200, edited.text
    seen = bob.get(path).json()["data"]
    assert (seen["content"], seen["is_edited"], seen["signature"]) == ("v2", True, sign(key, "v2", conv["id"], random))


def test_a_key_change_is_announced_in_every_conversation_the_device_writes_to(server: RunningServer) -> None:
    alice, bob, with_bob, device = setup(server, int(time.time()) - 60)
    carol = server.client()
    group = alice.group_with(carol, name="Signed group")
    old_key, new_key = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    for conv in (with_bob, group):
        body = signed_body(old_key, conv["id"])
        assert alice.post(f"/conversations/{conv['id']}/messages", body).status_code == 201
    first_seen = keys_of(server, alice.user_id, device)[0]["first_seen_at"].timestamp()
    relogged = login(server, alice.user_id, device, next_login_after(first_seen))
    body = signed_body(new_key, with_bob["id"])
    assert relogged.post(f"/conversations/{with_bob['id']}/messages", body).status_code == 201
    # carol, in the other conversation, learns of it before alice's next message to her
    (announced,) = recorded(server, "sender_key_changed", group["id"])
    assert {"user_id": alice.user_id, "device_id": device}.items() <= announced["payload"].items()
    assert f"user:{carol.user_id}" in announced["topics"]
    assert f"user:{bob.user_id}" not in announced["topics"]
    assert len(recorded(server, "sender_key_changed", with_bob["id"])) == 1
    body = signed_body(new_key, group["id"])
    assert relogged.post(f"/conversations/{group['id']}/messages", body).status_code == 201
    assert len(recorded(server, "sender_key_changed", group["id"])) == 1
