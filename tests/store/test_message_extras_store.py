"""Reactions, pins, drafts, attachments, forward and mark-unread use cases against the store,
on PostgreSQL and on SQLite (the embedded default), with the events they publish."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from shared.app import attachments, conversations, drafts, forwarding, messages, pins, reactions, receipts, unread
from shared.app.services import Services
from shared.bootstrap import build_services
from shared.domain.errors import Invalid
from shared.domain.models import Actor, NewMessage
from shared.ports.bus import PublishedEvent
from tests.support import client_random, make_settings, new_id


@pytest.fixture
def services(store_url: str, key_path: str) -> Iterator[Services]:
    svc = build_services(
        make_settings(
            store_url,
            key_path,
            messages_burst=10_000,
            messages_per_minute=10_000_000,
            max_reactions_per_user_per_message=2,
            max_pinned_messages=1,
        )
    )
    yield svc
    svc.close()


def _send(svc: Services, actor: Actor, conversation_id: str, content: str = "hi") -> str:
    new = NewMessage(content=content, message_type="text", client_random=client_random())
    return messages.send_message(svc, actor, conversation_id, new).message.id


def test_reactions_pins_and_limits_from_settings(services: Services) -> None:
    alice, bob = Actor(new_id(), "phone"), Actor(new_id(), "laptop")
    conv = conversations.create_direct(services, alice, bob.user_id).view
    heard: list[PublishedEvent] = []
    services.bus.subscribe(heard.append)
    first, second = _send(services, alice, conv["id"]), _send(services, alice, conv["id"])

    assert reactions.add_reaction(services, bob, first, "👍").created
    assert reactions.add_reaction(services, bob, first, "🎉").created
    with pytest.raises(Invalid) as too_many:
        reactions.add_reaction(services, bob, first, "🔥")  # the limit comes from the settings (2)
    assert too_many.value.code == "too_many_reactions"
    listed = reactions.list_reactions(services, alice, first)
    assert listed.counts == {"👍": 1, "🎉": 1}

    pins.pin_message(services, alice, first)
    with pytest.raises(Invalid) as full:
        pins.pin_message(services, alice, second)
    assert full.value.code == "too_many_pins"
    assert [p["message_id"] for p in pins.list_pins(services, bob, conv["id"])] == [first]
    names = [e.name for e in heard]
    assert names.count("reaction_added") == 2 and names.count("message_pinned") == 1


def test_drafts_upsert_on_both_backends(services: Services) -> None:
    alice, bob = Actor(new_id(), "phone"), Actor(new_id())
    conv = conversations.create_direct(services, alice, bob.user_id).view
    assert drafts.get_draft(services, alice, conv["id"]) is None
    drafts.save_draft(services, alice, conv["id"], "one", {})
    saved = drafts.save_draft(services, alice, conv["id"], "two\u0000", {"k": 1})
    assert saved is not None and saved["content"] == "two\u0000"
    assert drafts.get_draft(services, alice, conv["id"]) == saved
    assert drafts.delete_draft(services, alice, conv["id"]) is True
    assert drafts.delete_draft(services, alice, conv["id"]) is False


def test_attachments_forward_and_unread(services: Services) -> None:
    alice, bob, carol = Actor(new_id(), "phone"), Actor(new_id()), Actor(new_id())
    source = conversations.create_direct(services, alice, bob.user_id).view
    target = conversations.create_direct(services, bob, carol.user_id).view
    photo = _send(services, alice, source["id"], "photo")
    attachments.add_attachment(services, alice, photo, "media-1", "image", {})
    assert not attachments.add_attachment(services, alice, photo, "media-1", "image", {}).created
    [copy] = forwarding.forward_message(services, bob, photo, [target["id"]])
    assert copy.forwarded_from_id == photo and copy.conversation_id == target["id"]
    assert [a["media_id"] for a in attachments.list_attachments(services, carol, copy.id)] == ["media-1"]

    later = _send(services, alice, source["id"], "later")
    receipts.move_watermark(services, bob, source["id"], "read")
    state = unread.mark_unread(services, bob, photo)
    assert state["last_read_seq"] == 0 and state["unread_count"] == 2
    assert unread.mark_unread(services, bob, later)["last_read_seq"] == 0  # already unread: unchanged
