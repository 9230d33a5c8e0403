"""Forwarding over REST on PostgreSQL: copies through the normal send path, to conversations
the caller is a member of, never for deleted, system or ephemeral messages."""

from __future__ import annotations

from tests.api.event_rows import recorded
from tests.support import RunningServer, assert_error, new_id


def test_forward_to_two_conversations(server: RunningServer) -> None:
    alice, bob, carol, dave = (server.client() for _ in range(4))
    source = alice.direct_with(bob)
    with_carol = carol.direct_with(bob)  # bob forwards alice's message: he need not be its sender
    group = bob.group_with(carol, dave)
    original = alice.send(source["id"], "worth sharing", metadata={"kind": "tip"})

    forwarded = bob.post(f"/messages/{original['id']}/forward", {"conversation_ids": [with_carol["id"], group["id"]]})
    assert forwarded.status_code == 201, forwarded.text
    copies = forwarded.json()["data"]
    assert forwarded.json()["meta"]["count"] == 2
    assert [c["conversation_id"] for c in copies] == [with_carol["id"], group["id"]]
    for copy in copies:
        assert copy["forwarded_from_id"] == original["id"] and copy["id"] != original["id"]
        assert copy["sender_id"] == bob.user_id and copy["content"] == "worth sharing"
        assert copy["metadata"] == {"kind": "tip"} and copy["status"] == "sent"
        assert copy["signature"] is None and copy["reply_to_id"] is None
    assert copies[0]["client_random"] != copies[1]["client_random"]

    seen = carol.get(f"/conversations/{with_carol['id']}/messages").json()["data"]
    assert [(m["id"], m["forwarded_from_id"]) for m in seen] == [(copies[0]["id"], original["id"])]
    new_messages = recorded(server, "new_message", group["id"])
    assert [e["payload"]["message"]["id"] for e in new_messages] == [copies[1]["id"]]
    assert f"user:{dave.user_id}" in new_messages[0]["topics"]


def test_every_target_is_checked_before_anything_is_sent(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    mine = alice.direct_with(bob)
    theirs = bob.direct_with(carol)
    original = alice.send(mine["id"])
    path = f"/messages/{original['id']}/forward"
    assert_error(alice.post(path, {"conversation_ids": [mine["id"], theirs["id"]]}), 403, "not_a_member")
    assert_error(alice.post(path, {"conversation_ids": [mine["id"], new_id()]}), 404, "conversation_not_found")
    history = alice.get(f"/conversations/{mine['id']}/messages").json()["data"]
    assert [m["id"] for m in history] == [original["id"]]  # nothing was forwarded
    assert_error(alice.post(path, {"conversation_ids": ["not-a-uuid"]}), 422)
    assert_error(alice.post(path, {"conversation_ids": []}), 422)
    assert_error(alice.post(path, {}), 422)
    # the source must be visible to the caller
    assert_error(carol.post(path, {"conversation_ids": [theirs["id"]]}), 404, "message_not_found")


def test_deleted_ephemeral_and_system_messages_are_not_forwarded(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    conv = alice.group_with(bob)
    target = alice.direct_with(bob)
    ephemeral = alice.send(conv["id"], "vanishes", expires_in_seconds=3600)
    gone = alice.send(conv["id"], "deleted")
    assert alice.delete(f"/messages/{gone['id']}", params={"delete_for_everyone": "true"}).status_code == 200
    assert alice.post(f"/conversations/{conv['id']}/members", {"user_id": carol.user_id}).status_code == 201
    system = next(
        m for m in alice.get(f"/conversations/{conv['id']}/messages").json()["data"] if m["message_type"] == "system"
    )
    for message in (ephemeral, gone, system):
        body = {"conversation_ids": [target["id"]]}
        assert_error(alice.post(f"/messages/{message['id']}/forward", body), 422, "not_forwardable")
    assert alice.get(f"/conversations/{target['id']}/messages").json()["data"] == []


def test_end_to_end_encrypted_messages_are_forwarded_by_clients(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    secret = alice.group_with(bob, name="Secret")
    assert alice.put(f"/conversations/{secret['id']}", {"metadata": {"e2ee": {"enabled": True}}}).status_code == 200
    plain = alice.direct_with(bob)
    envelope = alice.send(secret["id"], "b64-ciphertext")
    clear = alice.send(plain["id"], "plaintext")
    body = assert_error(
        alice.post(f"/messages/{envelope['id']}/forward", {"conversation_ids": [plain["id"]]}), 422, "not_forwardable"
    )
    assert "message_id" in body["details"]
    body = assert_error(
        alice.post(f"/messages/{clear['id']}/forward", {"conversation_ids": [secret["id"]]}), 422, "not_forwardable"
    )
    assert "conversation_ids" in body["details"]


def test_twenty_targets_at_most(server: RunningServer) -> None:
    alice = server.client()
    friends = [server.client() for _ in range(20)]
    conversations = [alice.direct_with(friend)["id"] for friend in friends]
    original = alice.send(conversations[0], "to everyone")
    path = f"/messages/{original['id']}/forward"
    assert_error(alice.post(path, {"conversation_ids": [*conversations, new_id()]}), 422)
    ok = alice.post(path, {"conversation_ids": conversations + conversations[:3]})  # repeats count once
    assert ok.status_code == 201, ok.text
    assert [m["conversation_id"] for m in ok.json()["data"]] == conversations


def test_attachments_travel_with_the_forwarded_message(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    source = alice.direct_with(bob)
    target = bob.direct_with(carol)
    photo = alice.send(source["id"], "photo", message_type="media")
    media_id = new_id()
    body = {"media_id": media_id, "media_type": "image", "metadata": {"w": 1}}
    assert alice.post(f"/messages/{photo['id']}/attachments", body).status_code == 201
    copy = bob.post(f"/messages/{photo['id']}/forward", {"conversation_ids": [target["id"]]}).json()["data"][0]
    assert copy["message_type"] == "media"
    attachments = carol.get(f"/messages/{copy['id']}/attachments").json()["data"]
    assert [(a["media_id"], a["media_type"], a["metadata"]) for a in attachments] == [(media_id, "image", {"w": 1})]
