"""Pinned messages over REST on PostgreSQL (rules.md: at most 10 per conversation; owners,
admins and moderators pin any message, members only their own; system messages are not
pinnable)."""

from __future__ import annotations

import concurrent.futures
from typing import Any

from tests.api.event_rows import recorded
from tests.support import RunningServer, UserClient, assert_error, new_id


def _pin(client: UserClient, message_id: str) -> Any:
    return client.post(f"/messages/{message_id}/pin")


def _pins(client: UserClient, conversation_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/conversations/{conversation_id}/pins")
    assert response.status_code == 200, response.text
    return list(response.json()["data"])


def test_member_pins_own_message_then_unpins_with_events(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.group_with(bob)
    message = bob.send(conv["id"], "remember this")

    pinned = _pin(bob, message["id"])
    assert pinned.status_code == 200, pinned.text
    data = pinned.json()["data"]
    assert data["message_id"] == message["id"] and data["conversation_id"] == conv["id"]
    assert data["pinned_by"] == bob.user_id and data["pinned_at"].endswith("Z")
    assert data["message"]["id"] == message["id"] and data["message"]["content"] == "remember this"
    assert data["is_pinned"] is True
    again = _pin(bob, message["id"])  # idempotent: the current pin
    assert again.status_code == 200 and again.json()["data"]["pinned_at"] == data["pinned_at"]

    listed = _pins(alice, conv["id"])
    assert [(p["message_id"], p["pinned_by"]) for p in listed] == [(message["id"], bob.user_id)]
    assert set(listed[0]) == {"message_id", "conversation_id", "pinned_by", "pinned_at", "message"}

    unpinned = bob.delete(f"/messages/{message['id']}/pin")
    assert unpinned.status_code == 200
    assert unpinned.json()["data"] == {"message_id": message["id"], "conversation_id": conv["id"], "is_pinned": False}
    assert bob.delete(f"/messages/{message['id']}/pin").status_code == 200  # idempotent
    assert _pins(alice, conv["id"]) == []

    pinned_events = recorded(server, "message_pinned", conv["id"])
    assert len(pinned_events) == 1
    assert pinned_events[0]["topics"] == [f"conversation:{conv['id']}"]
    assert pinned_events[0]["seq"] == message["seq"]
    assert pinned_events[0]["payload"]["message_id"] == message["id"]
    assert pinned_events[0]["payload"]["pinned_by"] == bob.user_id
    unpinned_events = recorded(server, "message_unpinned", conv["id"])
    assert len(unpinned_events) == 1
    assert unpinned_events[0]["payload"]["unpinned_by"] == bob.user_id
    assert unpinned_events[0]["payload"]["message_id"] == message["id"]


def test_roles_decide_who_pins_and_unpins_others_messages(server: RunningServer) -> None:
    owner, admin, moderator, member = (server.client() for _ in range(4))
    conv = owner.group_with(admin, moderator, member)
    cid = conv["id"]
    for user, role in ((admin, "admin"), (moderator, "moderator")):
        assert owner.patch(f"/conversations/{cid}/members/{user.user_id}/role", {"role": role}).status_code == 200
    owners_message = owner.send(cid, "owner")
    members_message = member.send(cid, "member")
    admins_message = admin.send(cid, "admin")

    assert_error(_pin(member, owners_message["id"]), 403, "insufficient_role")
    assert _pin(member, members_message["id"]).status_code == 200
    assert _pin(moderator, owners_message["id"]).status_code == 200
    assert _pin(admin, members_message["id"]).status_code == 200  # already pinned: answered as is
    assert _pin(owner, admins_message["id"]).status_code == 200
    assert {p["message_id"] for p in _pins(member, cid)} == {
        owners_message["id"],
        members_message["id"],
        admins_message["id"],
    }
    # a member unpins neither someone else's message pinned by someone else...
    assert_error(member.delete(f"/messages/{owners_message['id']}/pin"), 403, "insufficient_role")
    # ...but a moderator does, and the member unpins their own message whoever pinned it
    assert moderator.delete(f"/messages/{admins_message['id']}/pin").status_code == 200
    assert member.delete(f"/messages/{members_message['id']}/pin").status_code == 200
    assert [p["message_id"] for p in _pins(owner, cid)] == [owners_message["id"]]


def test_ten_pins_per_conversation(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.group_with(bob)
    messages = [alice.send(conv["id"], f"m{i}") for i in range(12)]
    for message in messages[:10]:
        assert _pin(alice, message["id"]).status_code == 200
    assert_error(_pin(alice, messages[10]["id"]), 422, "too_many_pins")
    assert _pin(alice, messages[3]["id"]).status_code == 200  # re-pinning one of the ten is fine
    listed = _pins(bob, conv["id"])
    assert [p["message_id"] for p in listed] == [m["id"] for m in reversed(messages[:10])]  # newest pin first
    # unpinning frees a slot
    assert alice.delete(f"/messages/{messages[0]['id']}/pin").status_code == 200
    assert _pin(alice, messages[10]["id"]).status_code == 200
    assert_error(_pin(alice, messages[11]["id"]), 422, "too_many_pins")
    # a pinned message deleted for everyone leaves the list and frees its slot
    assert alice.delete(f"/messages/{messages[1]['id']}", params={"delete_for_everyone": "true"}).status_code == 200
    assert len(_pins(bob, conv["id"])) == 9
    assert _pin(alice, messages[11]["id"]).status_code == 200
    assert len(_pins(bob, conv["id"])) == 10


def test_system_and_deleted_messages_are_not_pinnable(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    conv = alice.group_with(bob)
    assert alice.post(f"/conversations/{conv['id']}/members", {"user_id": carol.user_id}).status_code == 201
    history = alice.get(f"/conversations/{conv['id']}/messages").json()["data"]
    system = next(m for m in history if m["message_type"] == "system")
    assert_error(_pin(alice, system["id"]), 422, "not_pinnable")
    gone = alice.send(conv["id"], "oops")
    assert alice.delete(f"/messages/{gone['id']}", params={"delete_for_everyone": "true"}).status_code == 200
    assert_error(_pin(alice, gone["id"]), 422, "not_pinnable")
    assert _pins(alice, conv["id"]) == []


def test_outsiders_see_no_pins(server: RunningServer) -> None:
    alice, bob, mallory = server.client(), server.client(), server.client()
    conv = alice.direct_with(bob)
    message = alice.send(conv["id"])
    assert _pin(alice, message["id"]).status_code == 200
    assert_error(mallory.get(f"/conversations/{conv['id']}/pins"), 403, "not_a_member")
    assert_error(mallory.get(f"/conversations/{new_id()}/pins"), 404, "conversation_not_found")
    assert_error(_pin(mallory, message["id"]), 404, "message_not_found")
    assert_error(mallory.delete(f"/messages/{message['id']}/pin"), 404, "message_not_found")
    assert _pins(bob, conv["id"])[0]["message_id"] == message["id"]


def test_concurrent_pins_never_exceed_ten(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.group_with(bob)
    messages = [alice.send(conv["id"], f"m{i}") for i in range(15)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=15) as pool:
        statuses = list(pool.map(lambda m: _pin(alice, m["id"]).status_code, messages))
    assert sorted(statuses) == [200] * 10 + [422] * 5
    assert len(_pins(bob, conv["id"])) == 10
    assert len(recorded(server, "message_pinned", conv["id"])) == 10
