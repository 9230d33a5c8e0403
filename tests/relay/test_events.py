"""Every client push of realtime.md and the events it makes, as the other members' sockets see them."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.relay.phx import Phx
from tests.support import RunningServer, UserClient, client_random


@dataclass
class Pair:
    alice: UserClient
    bob: UserClient
    conv: dict[str, object]
    a: Phx
    b: Phx

    @property
    def topic(self) -> str:
        return f"conversation:{self.conv['id']}"

    def send(self, content: str = "hi") -> dict[str, object]:
        body = {"content": content, "message_type": "text", "client_random": client_random()}
        message: dict[str, object] = self.a.ok(self.topic, "new_message", body)["message"]
        self.b.event(self.topic, "new_message", lambda p: p["message"]["id"] == message["id"])
        return message


@pytest.fixture
def pair(relay: RunningServer) -> Iterator[Pair]:
    """Alice and Bob in a direct conversation, each with a socket joined to their own topic and
    to the conversation's."""
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    a, b = Phx.open(relay, alice.user_id), Phx.open(relay, bob.user_id)
    for sock, user in ((a, alice), (b, bob)):
        sock.join_ok(f"user:{user.user_id}")
        sock.event(f"user:{user.user_id}", "conversation_summaries")
        sock.join_ok(f"conversation:{conv['id']}")
    yield Pair(alice, bob, conv, a, b)
    a.close()
    b.close()


def test_edit_message_replies_and_broadcasts_message_updated(pair: Pair) -> None:
    message = pair.send("first draft")
    edited = pair.a.ok(pair.topic, "edit_message", {"message_id": message["id"], "content": "final"})["message"]
    assert edited["id"] == message["id"] and edited["content"] == "final" and edited["is_edited"] is True
    on_conv = pair.b.event(pair.topic, "message_updated")
    on_user = pair.b.event(f"user:{pair.bob.user_id}", "message_updated")
    assert on_conv == on_user
    assert on_conv["message"]["content"] == "final" and on_conv["message"]["seq"] == message["seq"]
    assert pair.bob.get(f"/messages/{message['id']}").json()["data"] == on_conv["message"]


def test_delete_for_everyone_broadcasts_message_deleted(pair: Pair) -> None:
    message = pair.send("oops")
    reply = pair.a.ok(pair.topic, "delete_message", {"message_id": message["id"], "delete_for_everyone": True})
    expected = {
        "message_id": message["id"],
        "conversation_id": pair.conv["id"],
        "seq": message["seq"],
        "delete_for_everyone": True,
    }
    assert reply == expected
    assert pair.b.event(pair.topic, "message_deleted") == expected
    assert pair.bob.get(f"/messages/{message['id']}").json()["data"]["is_deleted"] is True


def test_delete_for_me_reaches_my_devices_only(pair: Pair, relay: RunningServer) -> None:
    message = pair.send("hide me")
    other_device = Phx.open(relay, pair.bob.user_id, device_id="tablet")
    try:
        other_device.join_ok(f"user:{pair.bob.user_id}")
        pair.b.ok(pair.topic, "delete_message", {"message_id": message["id"], "delete_for_everyone": False})
        deleted = other_device.event(f"user:{pair.bob.user_id}", "message_deleted")
        assert deleted["message_id"] == message["id"] and deleted["delete_for_everyone"] is False
        assert [m for m in pair.a.barrier() if m.event == "message_deleted"] == []
        assert pair.alice.get(f"/messages/{message['id']}").status_code == 200
    finally:
        other_device.close()


def test_message_delivered_tells_the_sender(pair: Pair) -> None:
    message = pair.send("did you get it?")
    reply = pair.b.ok(pair.topic, "message_delivered", {"message_id": message["id"]})
    assert reply["last_delivered_seq"] == message["seq"]
    status = pair.a.event(f"user:{pair.alice.user_id}", "delivery_status")
    assert status == {
        "message_id": message["id"],
        "conversation_id": pair.conv["id"],
        "user_id": pair.bob.user_id,
        "status": "delivered",
        "up_to_seq": message["seq"],
    }


@pytest.mark.parametrize("event", ["message_read", "mark_read"])
def test_read_moves_the_watermark_and_tells_the_sender_and_the_conversation(pair: Pair, event: str) -> None:
    first, second = pair.send("one"), pair.send("two")
    reply = pair.b.ok(pair.topic, event, {"up_to_seq": first["seq"]})
    assert reply["last_read_seq"] == first["seq"]
    status = pair.a.event(f"user:{pair.alice.user_id}", "delivery_status")
    assert (status["status"], status["message_id"], status["up_to_seq"]) == ("read", first["id"], first["seq"])
    read = pair.a.event(pair.topic, "conversation_read")
    assert (read["user_id"], read["up_to_seq"]) == (pair.bob.user_id, first["seq"])

    pair.b.ok(pair.topic, event, {})  # no id, no seq: the whole conversation
    status = pair.a.event(f"user:{pair.alice.user_id}", "delivery_status")
    assert (status["status"], status["message_id"], status["up_to_seq"]) == ("read", second["id"], second["seq"])
    assert pair.alice.get(f"/messages/{second['id']}").json()["data"]["status"] == "read"


def test_reader_with_receipts_off_reads_silently(pair: Pair) -> None:
    message = pair.send("secret reader")
    settings = pair.bob.put(f"/conversations/{pair.conv['id']}/settings", {"show_read_receipts": False})
    assert settings.status_code == 200
    assert pair.b.ok(pair.topic, "message_read", {"message_id": message["id"]})["last_read_seq"] == message["seq"]
    seen = pair.a.barrier()
    assert [m for m in seen if m.event in ("delivery_status", "conversation_read")] == []


def test_typing_goes_to_the_others_and_is_never_stored(pair: Pair, relay: RunningServer) -> None:
    assert pair.b.ok(pair.topic, "user_typing", {"typing": True}) == {}
    assert pair.a.event(pair.topic, "user_typing") == {"user_id": pair.bob.user_id, "typing": True}
    pair.b.ok(pair.topic, "typing_stop")
    assert pair.a.event(pair.topic, "user_typing") == {"user_id": pair.bob.user_id, "typing": False}
    pair.b.ok(pair.topic, "typing_start")
    assert pair.a.event(pair.topic, "user_typing") == {"user_id": pair.bob.user_id, "typing": True}
    assert [m for m in pair.b.barrier() if m.event == "user_typing"] == []  # not echoed to the typist
    assert pair.alice.get(f"/conversations/{pair.conv['id']}/messages").json()["data"] == []
    # without a refresh it expires (this test server: 1 s instead of 10)
    assert pair.a.event(pair.topic, "user_typing") == {"user_id": pair.bob.user_id, "typing": False}


def test_typing_push_without_ref_gets_no_reply_but_is_broadcast(pair: Pair) -> None:
    pair.b.push(pair.topic, "user_typing", {"typing": True}, ref=None)
    assert pair.a.event(pair.topic, "user_typing") == {"user_id": pair.bob.user_id, "typing": True}
    assert [m for m in pair.b.barrier() if m.event == "phx_reply"] == []


def test_typing_of_a_user_who_hides_it_is_not_broadcast(pair: Pair) -> None:
    response = pair.bob.put(f"/conversations/{pair.conv['id']}/settings", {"show_typing": False})
    assert response.status_code == 200
    pair.b.event(f"user:{pair.bob.user_id}", "conversation_settings_updated")
    pair.b.ok(pair.topic, "user_typing", {"typing": True})
    assert [m for m in pair.a.barrier() if m.event == "user_typing"] == []


def test_reactions_are_added_and_removed(pair: Pair) -> None:
    message = pair.send("react to me")
    reply = pair.b.ok(pair.topic, "add_reaction", {"message_id": message["id"], "reaction": "👍"})
    added = pair.a.event(pair.topic, "reaction_added")
    assert added["message_id"] == message["id"] and added["user_id"] == pair.bob.user_id
    assert added["reaction"] == reply["reaction"]
    assert set(added["reaction"]) >= {"id", "message_id", "user_id", "reaction", "created_at"}
    assert added["reaction"]["reaction"] == "👍"
    pair.b.ok(pair.topic, "remove_reaction", {"message_id": message["id"], "reaction": "👍"})
    removed = pair.a.event(pair.topic, "reaction_removed")
    assert (removed["message_id"], removed["user_id"], removed["reaction"]) == (message["id"], pair.bob.user_id, "👍")
    assert (
        pair.b.error(pair.topic, "add_reaction", {"message_id": message["id"], "reaction": "not an emoji"})["reason"]
        != "unknown_event"
    )


def test_presence_state_and_diffs(relay: RunningServer) -> None:
    alice, bob = relay.client(), relay.client()
    conv = alice.direct_with(bob)
    topic = f"conversation:{conv['id']}"
    a = Phx.open(relay, alice.user_id, device_id="alice-phone")
    b1 = Phx.open(relay, bob.user_id, device_id="bob-phone")
    b2 = Phx.open(relay, bob.user_id, device_id="bob-laptop")
    try:
        a.join_ok(topic)
        state = a.event(topic, "presence_state")
        assert list(state) == [alice.user_id]
        assert [m["device_id"] for m in state[alice.user_id]["metas"]] == ["alice-phone"]
        assert all("phx_ref" in m for m in state[alice.user_id]["metas"])

        b1.join_ok(topic)
        assert set(b1.event(topic, "presence_state")) == {alice.user_id, bob.user_id}
        joined = a.event(topic, "presence_diff", lambda p: bob.user_id in p["joins"])
        assert joined["leaves"] == {} and joined["joins"][bob.user_id]["metas"][0]["device_id"] == "bob-phone"

        b2.join_ok(topic)
        state = b2.event(topic, "presence_state")
        assert sorted(m["device_id"] for m in state[bob.user_id]["metas"]) == ["bob-laptop", "bob-phone"]

        b1.close()
        left = a.event(topic, "presence_diff", lambda p: bob.user_id in p["leaves"])
        assert left["joins"] == {} and left["leaves"][bob.user_id]["metas"][0]["device_id"] == "bob-phone"
        b2.ok(topic, "phx_leave")
        left = a.event(topic, "presence_diff", lambda p: bob.user_id in p["leaves"])
        assert left["leaves"][bob.user_id]["metas"][0]["device_id"] == "bob-laptop"
    finally:
        for sock in (a, b1, b2):
            sock.close()


def test_user_topic_carries_conversation_changes_to_every_device(pair: Pair, relay: RunningServer) -> None:
    laptop = Phx.open(relay, pair.bob.user_id, device_id="laptop")
    try:
        user_topic = f"user:{pair.bob.user_id}"
        laptop.join_ok(user_topic)
        cid = pair.conv["id"]
        assert pair.bob.post(f"/conversations/{cid}/pin").status_code == 200
        for sock in (pair.b, laptop):
            assert sock.event(user_topic, "conversation_pinned") == {"conversation_id": cid, "pinned": True}
        assert pair.bob.post(f"/conversations/{cid}/archive").status_code == 200
        for sock in (pair.b, laptop):
            assert sock.event(user_topic, "conversation_archived") == {"conversation_id": cid, "archived": True}
        assert pair.bob.put(f"/conversations/{cid}/settings", {"custom_name": "Al"}).status_code == 200
        for sock in (pair.b, laptop):
            changed = sock.event(user_topic, "conversation_settings_updated")
            assert changed["conversation_id"] == cid and changed["settings"]["custom_name"] == "Al"
        # none of this is Alice's business
        assert [m for m in pair.a.barrier() if m.topic == f"user:{pair.alice.user_id}"] == []
    finally:
        laptop.close()


def test_read_and_unread_on_one_device_reach_the_others(pair: Pair, relay: RunningServer) -> None:
    message = pair.send("read me")
    laptop = Phx.open(relay, pair.bob.user_id, device_id="laptop")
    try:
        user_topic = f"user:{pair.bob.user_id}"
        laptop.join_ok(user_topic)
        pair.b.ok(pair.topic, "message_read", {"message_id": message["id"]})
        read = laptop.event(user_topic, "conversation_read")
        assert (read["conversation_id"], read["up_to_seq"]) == (pair.conv["id"], message["seq"])
        assert pair.bob.post(f"/messages/{message['id']}/unread").status_code == 200
        unread = laptop.event(user_topic, "message_unread")
        assert (unread["message_id"], unread["conversation_id"]) == (message["id"], pair.conv["id"])
        told = pair.a.event(f"user:{pair.alice.user_id}", "message_unread")  # her read tick goes back
        assert told["message_id"] == message["id"]
    finally:
        laptop.close()


def test_group_events_reach_the_members(relay: RunningServer) -> None:
    owner, member, newcomer = relay.client(), relay.client(), relay.client()
    group = owner.group_with(member, name="Before")
    topic = f"conversation:{group['id']}"
    m, n = Phx.open(relay, member.user_id), Phx.open(relay, newcomer.user_id)
    try:
        m.join_ok(topic)
        m.join_ok(f"user:{member.user_id}")
        n.join_ok(f"user:{newcomer.user_id}")
        assert n.join(topic)[1]["reason"] == "not_authorized"

        assert owner.put(f"/conversations/{group['id']}", {"name": "After"}).status_code == 200
        assert m.event(f"user:{member.user_id}", "conversation_updated")["conversation"]["name"] == "After"
        system = m.event(topic, "new_message")["message"]
        assert system["message_type"] == "system"

        added = owner.post(f"/conversations/{group['id']}/members", {"user_ids": [newcomer.user_id]})
        assert added.status_code in (200, 201), added.text
        assert n.event(f"user:{newcomer.user_id}", "member_added")["user_id"] == newcomer.user_id
        assert m.event(topic, "member_added")["user_id"] == newcomer.user_id
        assert n.join_ok(topic)["conversation"]["id"] == group["id"]  # a member now
    finally:
        m.close()
        n.close()
