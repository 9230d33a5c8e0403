"""The core against the store, on PostgreSQL and on SQLite (the embedded default)."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator

import pytest
from sqlalchemy import func, select

from shared.app import conversations, messages, receipts
from shared.app.services import Services
from shared.bootstrap import build_services
from shared.domain.errors import Forbidden, TooLarge
from shared.domain.models import Actor, NewMessage
from shared.ports.bus import PublishedEvent
from shared.storage.schema import messages as messages_table
from shared.storage.schema import unpublished_events
from tests.support import client_random, make_settings, new_id


@pytest.fixture
def services(store_url: str, key_path: str) -> Iterator[Services]:
    svc = build_services(make_settings(store_url, key_path, messages_burst=10_000, messages_per_minute=10_000_000))
    yield svc
    svc.close()


def _text(content: str, random: int | None = None) -> NewMessage:
    return NewMessage(content=content, message_type="text", client_random=client_random() if random is None else random)


def test_send_dedupe_history_and_receipts(services: Services) -> None:
    alice, bob = Actor(new_id(), "phone"), Actor(new_id(), "laptop")
    conv = conversations.create_direct(services, alice, bob.user_id).view
    heard: list[PublishedEvent] = []
    services.bus.subscribe(heard.append)

    first = messages.send_message(services, alice, conv["id"], _text("bonjour\u0000!", 42))
    retry = messages.send_message(services, alice, conv["id"], _text("bonjour\u0000!", 42))
    assert first.created and not retry.created and retry.message.id == first.message.id
    second = messages.send_message(services, bob, conv["id"], _text("salut"))
    assert (first.message.seq, second.message.seq) == (1, 2)

    page = messages.history(services, bob, conv["id"], limit=50)
    assert [m["content"] for m in page.messages] == ["salut", "bonjour\u0000!"] and not page.has_more
    assert [e.name for e in heard] == ["new_message", "new_message"]
    assert heard[0].topics == (f"conversation:{conv['id']}", f"user:{bob.user_id}")

    receipts.move_watermark(services, bob, conv["id"], "read", up_to_seq=1)
    assert messages.get_message(services, alice, first.message.id)["status"] == "read"
    listed = conversations.list_conversations(services, bob, archived=False)
    assert listed[0]["unread_count"] == 0 and listed[0]["last_message"]["seq"] == 2
    with services.db.transaction() as conn:
        stored = conn.execute(
            select(func.count()).select_from(messages_table).where(messages_table.c.conversation_id == conv["id"])
        ).scalar_one()
        unpublished = conn.execute(select(func.count()).select_from(unpublished_events)).scalar_one()
    assert stored == 2
    assert unpublished == 0  # the outbox rows were published and marked


def test_concurrent_sends_are_gap_free(services: Services) -> None:
    alice, bob = Actor(new_id(), "a"), Actor(new_id(), "b")
    conv = conversations.create_group(services, alice, "Busy", [bob.user_id], {}).view

    def send(i: int) -> int:
        actor = alice if i % 2 else bob
        return messages.send_message(services, actor, conv["id"], _text(f"m{i}")).message.seq

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        seqs = list(pool.map(send, range(40)))
    assert sorted(seqs) == list(range(1, 41))


def test_limits_and_membership_are_enforced_in_the_core(services: Services) -> None:
    alice, bob, eve = Actor(new_id()), Actor(new_id()), Actor(new_id())
    conv = conversations.create_direct(services, alice, bob.user_id).view
    with pytest.raises(TooLarge):
        messages.send_message(services, alice, conv["id"], _text("x" * (64 * 1024 + 1)))
    assert messages.send_message(services, alice, conv["id"], _text("é" * (32 * 1024))).created  # exactly 64 KiB
    with pytest.raises(Forbidden):
        messages.send_message(services, eve, conv["id"], _text("let me in"))
