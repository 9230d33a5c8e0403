"""Mark unread over REST on PostgreSQL: the caller's read watermark goes back to just before
the message; their other devices and the senders of the messages now unread hear
`message_unread`."""

from __future__ import annotations

from tests.api.event_rows import recorded
from tests.support import RunningServer, assert_error


def test_mark_unread_moves_the_watermark_back_and_tells_the_senders(server: RunningServer) -> None:
    alice, bob, carol, dave = (server.client() for _ in range(4))
    conv = carol.group_with(alice, bob, dave)
    cid = conv["id"]
    early = dave.send(cid, "before")  # stays read: dave is not told
    target = bob.send(cid, "mark me")
    later = alice.send(cid, "after")
    own = carol.send(cid, "carol's own")
    assert carol.post(f"/conversations/{cid}/read", {}).status_code == 200
    status = alice.get(f"/messages/{later['id']}/status").json()["data"]
    assert {r["user_id"]: r["status"] for r in status["recipients"]}[carol.user_id] == "read"

    marked = carol.post(f"/messages/{target['id']}/unread")  # no body at all
    assert marked.status_code == 200, marked.text
    data = marked.json()["data"]
    assert data["last_read_seq"] == target["seq"] - 1 and data["message_id"] == target["id"]
    assert data["unread_count"] == 2  # bob's and alice's; carol's own message does not count
    listed = next(c for c in carol.get("/conversations").json()["data"] if c["id"] == cid)
    assert listed["unread_count"] == 2
    status = alice.get(f"/messages/{later['id']}/status").json()["data"]
    assert {r["user_id"]: r["status"] for r in status["recipients"]}[carol.user_id] == "delivered"
    status = dave.get(f"/messages/{early['id']}/status").json()["data"]
    assert {r["user_id"]: r["status"] for r in status["recipients"]}[carol.user_id] == "read"

    events = recorded(server, "message_unread", cid)
    assert len(events) == 1
    assert set(events[0]["topics"]) == {f"user:{carol.user_id}", f"user:{bob.user_id}", f"user:{alice.user_id}"}
    assert events[0]["payload"]["message_id"] == target["id"]
    assert events[0]["payload"]["conversation_id"] == cid
    assert own["seq"] > target["seq"]


def test_marking_an_unread_message_again_changes_nothing(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    first = alice.send(conv["id"], "one")
    second = alice.send(conv["id"], "two")
    assert bob.post(f"/conversations/{conv['id']}/read", {"up_to_seq": first["seq"]}).status_code == 200
    response = bob.post(f"/messages/{second['id']}/unread", json={})
    assert response.status_code == 200
    assert response.json()["data"]["last_read_seq"] == first["seq"] and response.json()["data"]["unread_count"] == 1
    assert recorded(server, "message_unread", conv["id"]) == []
    # marking the first message unread makes both unread; body-less JSON requests are fine too
    response = bob.post(f"/messages/{first['id']}/unread", headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert response.json()["data"]["last_read_seq"] == 0 and response.json()["data"]["unread_count"] == 2
    events = recorded(server, "message_unread", conv["id"])
    assert [set(e["topics"]) for e in events] == [{f"user:{bob.user_id}", f"user:{alice.user_id}"}]


def test_readers_without_receipts_only_tell_their_own_devices(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    message = alice.send(conv["id"])
    settings = bob.put(f"/conversations/{conv['id']}/settings", {"show_read_receipts": False})
    assert settings.status_code == 200
    assert bob.post(f"/conversations/{conv['id']}/read", {}).status_code == 200
    assert bob.post(f"/messages/{message['id']}/unread").status_code == 200
    events = recorded(server, "message_unread", conv["id"])
    assert [e["topics"] for e in events] == [[f"user:{bob.user_id}"]]


def test_outsiders_cannot_mark_unread(server: RunningServer) -> None:
    alice, bob, mallory = server.client(), server.client(), server.client()
    conv = alice.direct_with(bob)
    message = alice.send(conv["id"])
    assert_error(mallory.post(f"/messages/{message['id']}/unread"), 404, "message_not_found")
    assert_error(mallory.post("/messages/nope/unread"), 400, "invalid_id")
