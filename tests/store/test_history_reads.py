"""The read path's prebuilt queries (shared.storage.history) answer what the general ones in
shared.storage.messages / conversations answer, on PostgreSQL and on SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, select

from shared.app import conversations, members, messages
from shared.app.services import Services, utcnow
from shared.bootstrap import build_services
from shared.domain.models import Actor, NewMessage
from shared.storage import conversations as conv_store
from shared.storage import history as reads
from shared.storage import messages as msg_store
from shared.storage.schema import messages as messages_table
from tests.support import client_random, make_settings, new_id


@pytest.fixture
def services(store_url: str, key_path: str) -> Iterator[Services]:
    svc = build_services(make_settings(store_url, key_path, messages_burst=10_000, messages_per_minute=10_000_000))
    yield svc
    svc.close()


def _send(svc: Services, actor: Actor, cid: str, text: str, **fields: Any) -> str:
    new = NewMessage(content=text, message_type="text", client_random=client_random(), **fields)
    return messages.send_message(svc, actor, cid, new).message.id


def _general_history(
    conn: Connection,
    conversation_id: str,
    user_id: str,
    now: datetime,
    *,
    limit: int,
    before_seq: int | None = None,
    after_seq: int | None = None,
    before: datetime | None = None,
    after: datetime | None = None,
) -> reads.HistoryPage:
    """The reference: history as the general query of shared.storage.messages would give it
    (built anew on every call, visibility by `_visible_to`)."""
    visible = msg_store._visible_to(user_id, now)
    query = select(messages_table).where(messages_table.c.conversation_id == conversation_id, visible)
    forward = after_seq is not None or (after is not None and before_seq is None and before is None)
    if before_seq is not None:
        query = query.where(messages_table.c.seq < before_seq)
    if after_seq is not None:
        query = query.where(messages_table.c.seq > after_seq)
    if before is not None:
        query = query.where(messages_table.c.sent_at < before)
    if after is not None:
        query = query.where(messages_table.c.sent_at > after)
    order = messages_table.c.seq.asc() if forward else messages_table.c.seq.desc()
    rows = [msg_store._message(r) for r in conn.execute(query.order_by(order).limit(limit + 1))]
    has_more = len(rows) > limit
    rows = rows[:limit]
    if forward:
        rows.reverse()
    return reads.HistoryPage(rows, has_more)


def test_pages_match_the_general_history_query_for_every_cursor(services: Services) -> None:
    alice, bob = Actor(new_id(), "phone"), Actor(new_id(), "laptop")
    cid = conversations.create_direct(services, alice, bob.user_id).view["id"]
    ids = [_send(services, alice if i % 2 else bob, cid, f"m{i}") for i in range(12)]
    _send(services, alice, cid, "ephemeral", expires_in_seconds=3600)
    messages.delete_message(services, bob, ids[3], for_everyone=False)  # hidden for bob only
    with services.db.transaction() as conn:
        sent_at = [msg_store.get_message(conn, i).sent_at for i in ids]  # type: ignore[union-attr]
    cursors: list[dict[str, Any]] = [
        {},
        {"before_seq": 8},
        {"after_seq": 4},
        {"before_seq": 10, "after_seq": 2},
        {"before": sent_at[9]},
        {"after": sent_at[2]},
        {"after": sent_at[2], "before_seq": 9},
        {"before": sent_at[10], "after": sent_at[1]},
        {"after_seq": 0, "after": sent_at[5]},
    ]
    for now in (utcnow(), utcnow() + timedelta(hours=2)):  # before and after the ephemeral one expires
        for user in (alice.user_id, bob.user_id):
            for limit in (1, 3, 50):
                for cursor in cursors:
                    with services.db.transaction() as conn:
                        want = _general_history(conn, cid, user, now, limit=limit, **cursor)
                    with reads.reading(services.db) as conn:
                        got = reads.history(conn, cid, user, now, limit=limit, **cursor)
                    assert got.messages == want.messages, (user, limit, cursor)
                    assert got.has_more == want.has_more, (user, limit, cursor)


def test_access_reads_the_conversation_and_its_active_members(services: Services) -> None:
    alice, bob, carol = Actor(new_id()), Actor(new_id()), Actor(new_id())
    cid = conversations.create_group(services, alice, "team", [bob.user_id, carol.user_id], {}).view["id"]
    members.leave(services, carol, cid)
    with reads.reading(services.db) as conn:
        found = reads.access(conn, cid)
        missing = reads.access(conn, new_id())
        listed = conv_store.list_members(conn, cid)
    assert found.exists and found.is_active
    assert found.members == listed and {m.user_id for m in listed} == {alice.user_id, bob.user_id}
    assert found.member(carol.user_id) is None and found.member(bob.user_id) is not None
    assert not missing.exists and missing.members == []


def test_a_visible_message_is_read_with_its_visibility_in_one_go(services: Services) -> None:
    alice, bob = Actor(new_id()), Actor(new_id())
    cid = conversations.create_direct(services, alice, bob.user_id).view["id"]
    kept, hidden = _send(services, alice, cid, "kept"), _send(services, alice, cid, "hidden")
    messages.delete_message(services, bob, hidden, for_everyone=False)
    now = utcnow()
    with reads.reading(services.db) as conn:
        for message_id in (kept, hidden):
            for user in (alice.user_id, bob.user_id):
                found = reads.get_visible_message(conn, message_id, user, now)
                assert found is not None
                assert found[0] == msg_store.get_message(conn, message_id)
                assert found[1] == msg_store.is_visible(conn, message_id, user, now)
        assert reads.get_visible_message(conn, new_id(), alice.user_id, now) is None
        assert reads.get_message(conn, kept) == msg_store.get_message(conn, kept)
