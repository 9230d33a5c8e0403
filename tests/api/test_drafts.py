"""Drafts over REST on PostgreSQL: one per user per conversation, at most 64 KiB, synced to
the user's other devices by `draft_updated` on their own `user:` topic."""

from __future__ import annotations

from tests.api.event_rows import recorded
from tests.support import RunningServer, assert_error, new_id


def test_save_read_replace_delete_and_sync_events(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    path = f"/conversations/{conv['id']}/draft"

    none = alice.get(path)
    assert none.status_code == 200 and none.json()["data"] is None

    content = "half a thought 🤔 \u0000 kept\r\n"
    saved = alice.put(path, {"content": content, "metadata": {"reply_to_id": "x"}})
    assert saved.status_code == 200, saved.text
    draft = saved.json()["data"]
    assert set(draft) == {"conversation_id", "content", "metadata", "updated_at"}
    assert draft["conversation_id"] == conv["id"] and draft["metadata"] == {"reply_to_id": "x"}
    assert draft["content"].encode() == content.encode()
    assert alice.get(path).json()["data"] == draft

    replaced = alice.put(path, {"draft": {"content": "second"}})  # nested form, replaces the first
    assert replaced.status_code == 200
    assert replaced.json()["data"]["content"] == "second" and replaced.json()["data"]["metadata"] == {}
    assert alice.get(path).json()["data"]["content"] == "second"
    assert bob.get(path).json()["data"] is None  # one draft per user

    assert alice.delete(path).status_code == 204
    assert alice.get(path).json()["data"] is None
    assert alice.delete(path).status_code == 204  # idempotent

    events = recorded(server, "draft_updated", conv["id"])
    assert [e["topics"] for e in events] == [[f"user:{alice.user_id}"]] * 3  # two saves, one delete
    assert events[0]["payload"]["draft"]["content"].encode() == content.encode()
    assert events[1]["payload"]["draft"]["content"] == "second"
    assert events[2]["payload"]["draft"] is None and events[2]["payload"]["conversation_id"] == conv["id"]


def test_draft_event_names_the_device_that_saved_it(server: RunningServer) -> None:
    alice, bob = server.client(device_id="laptop"), server.client()
    conv = alice.direct_with(bob)
    assert alice.put(f"/conversations/{conv['id']}/draft", {"content": "from the laptop"}).status_code == 200
    event = recorded(server, "draft_updated", conv["id"])[-1]
    assert event["payload"]["device_id"] == "laptop"


def test_an_empty_draft_is_deleted(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    path = f"/conversations/{conv['id']}/draft"
    assert alice.put(path, {"content": "something"}).status_code == 200
    cleared = alice.put(path, {"content": ""})
    assert cleared.status_code == 200 and cleared.json()["data"] is None
    assert alice.get(path).json()["data"] is None
    assert recorded(server, "draft_updated", conv["id"])[-1]["payload"]["draft"] is None


def test_draft_size_limit_is_64_kib(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    path = f"/conversations/{conv['id']}/draft"
    exactly = "é" * (32 * 1024)  # 65,536 bytes of UTF-8
    ok = alice.put(path, {"content": exactly})
    assert ok.status_code == 200 and ok.json()["data"]["content"] == exactly
    body = assert_error(alice.put(path, {"content": exactly + "x"}), 413, "draft_too_large")
    assert "content" in body["details"]
    assert alice.get(path).json()["data"]["content"] == exactly  # the rejected one changed nothing
    assert_error(alice.put(path, {"content": 42}), 422)


def test_only_members_have_drafts(server: RunningServer) -> None:
    alice, bob, mallory = server.client(), server.client(), server.client()
    conv = alice.group_with(bob)
    path = f"/conversations/{conv['id']}/draft"
    for response in (mallory.get(path), mallory.put(path, {"content": "hi"}), mallory.delete(path)):
        assert_error(response, 403, "not_a_member")
    assert_error(alice.get(f"/conversations/{new_id()}/draft"), 404, "conversation_not_found")
    assert bob.put(path, {"content": "before leaving"}).status_code == 200
    assert bob.post(f"/conversations/{conv['id']}/leave").status_code == 204
    assert_error(bob.get(path), 403, "not_a_member")
