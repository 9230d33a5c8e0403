"""Edit, delete, replies, history paging and read receipts (rules.md: Messages)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tests.relay.phx import Phx
from tests.support import RunningServer, assert_error, client_random


def test_edit_only_by_sender_within_fifteen_minutes(server: RunningServer, time_travel: list[timedelta]) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    message = alice.send(cid, "first draft")
    assert_error(bob.put(f"/messages/{message['id']}", {"content": "hijack"}), 403, "not_sender")
    time_travel.append(timedelta(minutes=14, seconds=50))
    edited = alice.put(f"/messages/{message['id']}", {"content": "second draft"})
    assert edited.status_code == 200
    assert edited.json()["data"]["is_edited"] is True and edited.json()["data"]["content"] == "second draft"
    time_travel.append(timedelta(minutes=15, seconds=10))
    assert_error(alice.put(f"/messages/{message['id']}", {"content": "too late"}), 403, "edit_window_expired")
    assert bob.get(f"/messages/{message['id']}").json()["data"]["content"] == "second draft"


def test_delete_for_me_and_for_everyone(server: RunningServer, time_travel: list[timedelta]) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    one, two = alice.send(cid, "one"), alice.send(cid, "two")
    # for me: gone for bob only
    assert bob.delete(f"/messages/{one['id']}").status_code == 200
    assert [m["id"] for m in bob.get(f"/conversations/{cid}/messages").json()["data"]] == [two["id"]]
    assert len(alice.get(f"/conversations/{cid}/messages").json()["data"]) == 2
    assert_error(bob.get(f"/messages/{one['id']}"), 404)
    # for everyone: not by bob, by alice within 24 h; a tombstone stays
    assert_error(bob.delete(f"/messages/{two['id']}", params={"delete_for_everyone": "true"}), 403)
    time_travel.append(timedelta(hours=23, minutes=59))
    assert alice.delete(f"/messages/{two['id']}", params={"delete_for_everyone": "true"}).status_code == 200
    tomb = bob.get(f"/messages/{two['id']}").json()["data"]
    assert tomb["is_deleted"] is True and tomb["content"] == ""
    late = alice.send(cid, "three")
    time_travel.append(timedelta(hours=23, minutes=59) + timedelta(hours=24, minutes=1))
    assert_error(alice.delete(f"/messages/{late['id']}", params={"delete_for_everyone": "true"}), 403)


def test_group_admin_deletes_anyones_message_any_time(server: RunningServer, time_travel: list[timedelta]) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.group_with(bob)["id"]
    message = bob.send(cid, "old")
    time_travel.append(timedelta(days=30))
    assert alice.delete(f"/messages/{message['id']}", params={"delete_for_everyone": "true"}).status_code == 200


def test_system_messages_cannot_be_deleted(server: RunningServer) -> None:
    """Not for everyone, not even by the group's owner, and not for oneself either."""
    alice, bob = server.client(), server.client()
    cid = alice.group_with(bob)["id"]
    assert alice.put(f"/conversations/{cid}", {"name": "Renamed"}).status_code == 200
    path = f"/conversations/{cid}/messages"
    before = alice.get(path).json()["data"]
    system = [m for m in before if m["message_type"] == "system"]
    assert system, before
    for message in system:
        for client, params in ((alice, {"delete_for_everyone": "true"}), (alice, {}), (bob, {})):
            body = assert_error(client.delete(f"/messages/{message['id']}", params=params), 422, "not_deletable")
            assert "system" in body["error"] and "message_id" in body["details"]
    for client in (alice, bob):  # nothing changed for anyone
        seen = client.get(path).json()["data"]
        assert [(m["id"], m["is_deleted"], m["content"]) for m in seen] == [
            (m["id"], m["is_deleted"], m["content"]) for m in before
        ]
    # the user's own messages still delete as before
    mine = alice.send(cid, "mine")
    assert alice.delete(f"/messages/{mine['id']}", params={"delete_for_everyone": "true"}).status_code == 200


def test_a_text_message_with_empty_content_is_refused(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    path = f"/conversations/{cid}/messages"
    for content in ("", "   ", "\n\t "):
        body = assert_error(
            alice.post(path, {"content": content, "message_type": "text", "client_random": client_random()}),
            422,
            "empty_content",
        )
        assert "content" in body["details"] and "empty" in body["error"]
    assert_error(alice.post(path, {"content": "", "client_random": client_random()}), 422, "empty_content")
    assert alice.get(path).json()["data"] == []  # nothing was stored

    # a media message may have no text, and an E2E conversation's envelope is content like any other
    media = alice.post(path, {"content": "", "message_type": "media", "client_random": client_random()})
    assert media.status_code == 201, media.text
    assert media.json()["data"]["content"] == ""
    e2e = alice.group_with(bob, name="Secret")["id"]
    assert alice.put(f"/conversations/{e2e}", {"metadata": {"e2ee": {"enabled": True}}}).status_code == 200
    assert alice.send(e2e, "eyJjaXBoZXJ0ZXh0IjoiLi4uIn0=")["content"] == "eyJjaXBoZXJ0ZXh0IjoiLi4uIn0="
    assert_error(alice.post(f"/conversations/{e2e}/messages", {"content": "", "client_random": 1}), 422)

    # nor may an edit empty one, nor a scheduled message, nor a socket push
    kept = alice.send(cid, "kept")
    assert_error(alice.put(f"/messages/{kept['id']}", {"content": " "}), 422, "empty_content")
    assert bob.get(f"/messages/{kept['id']}").json()["data"]["content"] == "kept"
    due = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    scheduled = alice.post(
        "/messages/scheduled", {"conversation_id": cid, "content": "", "message_type": "text", "scheduled_at": due}
    )
    assert_error(scheduled, 422, "empty_content")
    socket = Phx.open(server, alice.user_id)
    try:
        socket.join_ok(f"conversation:{cid}")
        ref = socket.push(f"conversation:{cid}", "new_message", {"content": "", "client_random": client_random()})
        reply = socket.reply(ref).payload
        assert reply["status"] == "error" and reply["response"]["reason"] == "empty_content", reply
    finally:
        socket.close()
    assert [m["content"] for m in bob.get(path).json()["data"]] == ["kept", ""]


def test_reply_must_stay_in_the_conversation(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    here = alice.direct_with(bob)["id"]
    elsewhere = alice.direct_with(carol)["id"]
    other = alice.send(elsewhere, "elsewhere")
    assert_error(
        alice.post(
            f"/conversations/{here}/messages", {"content": "re", "client_random": 5, "reply_to_id": other["id"]}
        ),
        422,
    )
    target = alice.send(here, "here")
    reply = bob.send(here, "re", reply_to_id=target["id"])
    assert reply["reply_to_id"] == target["id"]


def test_history_pages_with_seq_cursors_and_exact_has_more(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    cid = alice.direct_with(bob)["id"]
    for i in range(7):
        alice.send(cid, f"m{i + 1}")
    first = bob.get(f"/conversations/{cid}/messages", params={"limit": 3}).json()
    assert [m["seq"] for m in first["data"]] == [7, 6, 5] and first["meta"]["has_more"] is True
    second = bob.get(
        f"/conversations/{cid}/messages", params={"limit": 3, "before_seq": first["meta"]["next_before_seq"]}
    ).json()
    assert [m["seq"] for m in second["data"]] == [4, 3, 2] and second["meta"]["has_more"] is True
    third = bob.get(
        f"/conversations/{cid}/messages", params={"limit": 3, "before_seq": second["meta"]["next_before_seq"]}
    ).json()
    assert [m["seq"] for m in third["data"]] == [1] and third["meta"]["has_more"] is False
    exact = bob.get(f"/conversations/{cid}/messages", params={"limit": 2, "before_seq": 3}).json()
    assert [m["seq"] for m in exact["data"]] == [2, 1] and exact["meta"]["has_more"] is False
    forward = bob.get(f"/conversations/{cid}/messages", params={"limit": 3, "after_seq": 2}).json()
    assert [m["seq"] for m in forward["data"]] == [5, 4, 3] and forward["meta"]["has_more"] is True
    tail = bob.get(f"/conversations/{cid}/messages", params={"limit": 2, "after_seq": 5}).json()
    assert [m["seq"] for m in tail["data"]] == [7, 6] and tail["meta"]["has_more"] is False
    big = bob.get(f"/conversations/{cid}/messages", params={"limit": 1000}).json()
    assert len(big["data"]) == 7  # limit is capped at 100, never an error


def test_group_status_is_an_aggregate_and_respects_receipt_settings(server: RunningServer) -> None:
    alice, bob, carol = server.client(), server.client(), server.client()
    cid = alice.group_with(bob, carol)["id"]
    message = alice.send(cid, "hi all")
    assert bob.post(f"/conversations/{cid}/read", {"message_id": message["id"]}).status_code == 200
    assert alice.get(f"/messages/{message['id']}").json()["data"]["status"] == "sent"
    assert carol.put(f"/conversations/{cid}/settings", {"show_read_receipts": False}).status_code == 200
    assert carol.post(f"/conversations/{cid}/read", {}).status_code == 200
    status = alice.get(f"/messages/{message['id']}/status").json()["data"]
    assert {r["user_id"]: r["status"] for r in status["recipients"]} == {
        bob.user_id: "read",
        carol.user_id: "delivered",
    }
    assert status["status"] == "delivered"
    assert_error(bob.get(f"/messages/{message['id']}/status"), 403)
