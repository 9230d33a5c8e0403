"""Attachments over REST on PostgreSQL: the sender links media-service objects to a message
(idempotent per media_id); members list them."""

from __future__ import annotations

from tests.api.event_rows import recorded
from tests.support import RunningServer, assert_error, new_id


def test_sender_links_media_once_and_members_list_it(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    message = alice.send(conv["id"], "look", message_type="media")
    path = f"/messages/{message['id']}/attachments"
    media_id = new_id()

    linked = alice.post(path, {"media_id": media_id, "media_type": "image", "metadata": {"width": 640}})
    assert linked.status_code == 201, linked.text
    attachment = linked.json()["data"]
    assert attachment["message_id"] == message["id"] and attachment["conversation_id"] == conv["id"]
    assert (attachment["media_id"], attachment["media_type"], attachment["metadata"]) == (
        media_id,
        "image",
        {"width": 640},
    )
    again = alice.post(path, {"attachment": {"media_id": media_id, "media_type": "image"}})  # nested form too
    assert again.status_code == 200 and again.json()["data"] == attachment

    listed = bob.get(path)
    assert listed.status_code == 200 and listed.json()["data"] == [attachment]
    assert listed.json()["meta"]["count"] == 1

    events = recorded(server, "attachment_added", conv["id"])
    assert len(events) == 1
    assert events[0]["payload"]["attachment"] == attachment and events[0]["seq"] == message["seq"]
    assert events[0]["topics"] == [f"conversation:{conv['id']}"]


def test_only_the_sender_links_and_fields_are_checked(server: RunningServer) -> None:
    alice, bob, mallory = server.client(), server.client(), server.client()
    conv = alice.direct_with(bob)
    message = alice.send(conv["id"])
    path = f"/messages/{message['id']}/attachments"
    assert_error(bob.post(path, {"media_id": new_id(), "media_type": "video"}), 403, "not_sender")
    assert_error(mallory.post(path, {"media_id": new_id(), "media_type": "video"}), 404, "message_not_found")
    assert_error(mallory.get(path), 404, "message_not_found")
    assert_error(alice.post(path, {"media_id": new_id(), "media_type": "gif"}), 422)
    assert_error(alice.post(path, {"media_type": "audio"}), 422)
    assert_error(alice.post(path, {"media_id": " ", "media_type": "audio"}), 422)
    assert_error(alice.post(path, {"media_id": "m" * 129, "media_type": "audio"}), 422)
    for media_type in ("image", "video", "audio", "document"):
        assert alice.post(path, {"media_id": f"{media_type}-1", "media_type": media_type}).status_code == 201
    assert alice.post(path, {"media_id": "m" * 128, "media_type": "audio"}).status_code == 201
    assert [a["media_type"] for a in bob.get(path).json()["data"]] == ["image", "video", "audio", "document", "audio"]
    assert alice.delete(f"/messages/{message['id']}", params={"delete_for_everyone": "true"}).status_code == 200
    assert_error(alice.post(path, {"media_id": new_id(), "media_type": "image"}), 422, "not_attachable")


def test_twenty_attachments_per_message(server: RunningServer) -> None:
    alice, bob = server.client(), server.client()
    conv = alice.direct_with(bob)
    message = alice.send(conv["id"], "album", message_type="media")
    path = f"/messages/{message['id']}/attachments"
    ids = [new_id() for _ in range(21)]
    for media_id in ids[:20]:
        assert alice.post(path, {"media_id": media_id, "media_type": "image"}).status_code == 201
    assert_error(alice.post(path, {"media_id": ids[20], "media_type": "image"}), 422, "too_many_attachments")
    assert alice.post(path, {"media_id": ids[0], "media_type": "image"}).status_code == 200  # already linked
    assert [a["media_id"] for a in bob.get(path).json()["data"]] == ids[:20]
