"""Reports and sanctions against the store, on PostgreSQL and SQLite (the per-reporter lock,
the rolling-day count and the time comparisons differ between them)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import create_engine, insert, select

from shared.app import conversations, members, messages, moderation
from shared.app.services import Services, utcnow
from shared.bootstrap import build_services
from shared.domain.errors import Conflict, Forbidden, RateLimited
from shared.domain.models import Actor, NewMessage
from shared.storage.migrate import alembic_config
from shared.storage.schema import reports
from tests.support import client_random, make_settings, new_id


@pytest.fixture
def services(store_url: str, key_path: str) -> Iterator[Services]:
    svc = build_services(make_settings(store_url, key_path, reports_per_day=3))
    yield svc
    svc.close()


def _send(svc: Services, actor: Actor, cid: str) -> str:
    new = NewMessage(content="hello", message_type="text", client_random=client_random())
    return messages.send_message(svc, actor, cid, new).message.id


def test_cooldown_and_rolling_daily_limit(services: Services) -> None:
    alice, bob = Actor(new_id()), Actor(new_id())
    cid = conversations.create_direct(services, alice, bob.user_id).view["id"]
    ids = [_send(services, alice, cid) for _ in range(4)]
    start = utcnow()
    services.clock = lambda: start
    first = moderation.create_report(services, bob, category="spam", message_id=ids[0])
    with pytest.raises(Conflict) as conflict:
        moderation.create_report(services, bob, category="spam", message_id=ids[0])
    assert conflict.value.details["report_id"] == first["id"]
    services.clock = lambda: start + timedelta(hours=1)
    moderation.create_report(services, bob, category="spam", message_id=ids[1])
    moderation.create_report(services, bob, category="spam", message_id=ids[2])
    with pytest.raises(RateLimited) as limited:
        moderation.create_report(services, bob, category="spam", message_id=ids[3])
    assert limited.value.retry_after == 23 * 3600  # until the oldest of the three is a day old
    services.clock = lambda: start + timedelta(days=1)  # exactly a day after the first: free again
    moderation.create_report(services, bob, category="spam", message_id=ids[3])
    with pytest.raises(RateLimited):  # the two made an hour in, and this one: three in the last day
        moderation.create_report(services, bob, category="other", message_id=ids[0])
    services.clock = lambda: start + timedelta(hours=25, seconds=1)
    moderation.create_report(services, bob, category="other", message_id=ids[0])  # its cooldown is long over
    mine = moderation.list_my_reports(services, bob, limit=10, offset=0)
    assert len(mine.reports) == 5 and not mine.has_more


def test_sanctions_in_force_block_sending_and_joining(services: Services) -> None:
    owner, bob = Actor(new_id()), Actor(new_id())
    cid = conversations.create_group(services, owner, "G", [bob.user_id], {}).view["id"]
    start = utcnow()
    services.clock = lambda: start
    muted = moderation.create_sanction(services, owner, cid, user_id=bob.user_id, kind="mute", duration_seconds=60)
    with pytest.raises(Forbidden) as refused:
        _send(services, bob, cid)
    assert refused.value.code == "sanctioned"
    services.clock = lambda: start + timedelta(seconds=60)  # expires_at is exclusive: over
    _send(services, bob, cid)
    assert moderation.list_sanctions(services, owner, cid) == []
    assert [s["id"] for s in moderation.list_sanctions(services, owner, cid, include_inactive=True)] == [muted["id"]]

    moderation.create_sanction(services, owner, cid, user_id=bob.user_id, kind="kick", duration_seconds=60)
    with pytest.raises(Forbidden) as kicked:
        members.add_members(services, owner, cid, [bob.user_id])
    assert kicked.value.code == "sanctioned"
    services.clock = lambda: start + timedelta(seconds=121)
    members.add_members(services, owner, cid, [bob.user_id])
    _send(services, bob, cid)


def test_migration_0006_moves_stored_statuses_to_the_clients(store_url: str) -> None:
    """Reports resolved before 0006 say `resolved`; after it, resolved_action or
    resolved_dismissed as their resolution says (pending stays); downgrade folds them back."""
    config = alembic_config(store_url)
    command.downgrade(config, "0005")
    engine = create_engine(store_url)
    now = utcnow()
    stored = {
        new_id(): ("pending", None),
        new_id(): ("resolved", "dismissed"),
        new_id(): ("resolved", "action_taken"),
    }
    try:
        with engine.begin() as conn:
            for report_id, (status, resolution) in stored.items():
                row = {"id": report_id, "reporter_id": new_id(), "category": "spam", "created_at": now}
                conn.execute(insert(reports).values(**row, status=status, resolution=resolution))
        command.upgrade(config, "head")

        def statuses() -> dict[str, str]:
            with engine.connect() as conn:
                return {r.id: r.status for r in conn.execute(select(reports.c.id, reports.c.status))}

        expected = ["pending", "resolved_dismissed", "resolved_action"]
        assert statuses() == dict(zip(stored, expected, strict=True))
        command.downgrade(config, "0005")
        assert statuses() == dict(zip(stored, ["pending", "resolved", "resolved"], strict=True))
        command.upgrade(config, "head")
        assert statuses() == dict(zip(stored, expected, strict=True))
    finally:
        engine.dispose()
