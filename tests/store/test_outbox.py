"""The transactional outbox: events survive a failed publish and the sweeper sends them."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from alembic import command
from sqlalchemy import create_engine, func, select, text

from shared.adapters.inprocess_bus import InProcessBus
from shared.app import conversations, messages
from shared.app.outbox_sweeper import sweep_outbox
from shared.app.publication_marks import PublicationMarks
from shared.app.services import Services
from shared.bootstrap import build_services
from shared.domain.models import Actor, NewMessage
from shared.ports.bus import PublishedEvent, Subscriber
from shared.storage.migrate import alembic_config
from shared.storage.schema import events, unpublished_events
from tests.support import make_settings, new_id


class FlakyBus:
    """A bus that is down until `up` is set (a real outage, as the publisher sees it)."""

    def __init__(self) -> None:
        self.inner = InProcessBus()
        self.up = False

    def publish(self, batch: Sequence[PublishedEvent]) -> None:
        if not self.up:
            raise ConnectionError("bus unreachable")
        self.inner.publish(batch)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        return self.inner.subscribe(subscriber)

    def close(self) -> None:
        self.inner.close()


def _services_on_flaky_bus(store_url: str, key_path: str, *, up: bool, **settings: Any) -> Services:
    """Services whose bus is not in the process (as Pub/Sub: events are marked after publication)."""
    svc = build_services(make_settings(store_url, key_path, **settings))
    svc.bus = FlakyBus()
    svc.bus.up = up
    return svc


@pytest.fixture
def services(store_url: str, key_path: str) -> Iterator[Services]:
    svc = _services_on_flaky_bus(store_url, key_path, up=False, publication_marks_delay_ms=0)  # each unit marks its own
    yield svc
    svc.close()


def _unpublished(svc: Services) -> int:
    with svc.db.transaction() as conn:
        return int(conn.execute(select(func.count()).select_from(unpublished_events)).scalar_one())


def test_a_send_commits_even_when_the_bus_is_down_and_the_sweeper_delivers_later(services: Services) -> None:
    bus = services.bus
    assert isinstance(bus, FlakyBus)
    heard: list[PublishedEvent] = []
    bus.subscribe(heard.append)
    alice, bob = Actor(new_id(), "a"), Actor(new_id(), "b")
    conv = conversations.create_direct(services, alice, bob.user_id).view
    sent = messages.send_message(services, alice, conv["id"], NewMessage("kept", "text", 1))
    assert sent.created and heard == []
    assert _unpublished(services) == 2  # conversation_created, new_message

    assert sweep_outbox(services, older_than_seconds=0) == 0  # still down: nothing lost
    assert _unpublished(services) == 2
    bus.up = True
    assert sweep_outbox(services, older_than_seconds=0) == 2
    assert [e.name for e in heard] == ["conversation_created", "new_message"]
    assert heard[1].payload["message"]["content"] == "kept"
    assert _unpublished(services) == 0
    assert sweep_outbox(services, older_than_seconds=0) == 0


def test_events_handed_over_in_process_are_stored_published_and_left_to_no_sweeper(
    store_url: str, key_path: str
) -> None:
    """The in-process bus gives every subscriber an event before `publish` returns: its events
    are written marked (no second write of each row), and the sweeper has nothing to resend."""
    svc = build_services(make_settings(store_url, key_path))
    try:
        assert isinstance(svc.bus, InProcessBus)
        heard: list[PublishedEvent] = []
        svc.bus.subscribe(heard.append)
        alice, bob = Actor(new_id(), "a"), Actor(new_id(), "b")
        conv = conversations.create_direct(svc, alice, bob.user_id).view
        messages.send_message(svc, alice, conv["id"], NewMessage("marked", "text", 2))
        assert [e.name for e in heard] == ["conversation_created", "new_message"]
        with svc.db.transaction() as conn:
            stored = conn.execute(select(events.c.id).where(events.c.id.in_([e.position for e in heard]))).all()
            waiting = conn.execute(select(func.count()).select_from(unpublished_events)).scalar_one()
        assert len(stored) == 2 and waiting == 0  # marked as written: nothing waits for the bus
        assert sweep_outbox(svc, older_than_seconds=0) == 0
    finally:
        svc.close()


def test_migration_0011_keeps_what_waits_for_the_bus_both_ways(services: Services, store_url: str) -> None:
    """0011 moved "not published yet" from a column of every event to a row of its own: what
    waited before waits after, in both directions, and the sweeper still sends it once."""
    bus = services.bus
    assert isinstance(bus, FlakyBus)
    alice, bob = Actor(new_id(), "a"), Actor(new_id(), "b")
    bus.up = True
    conv = conversations.create_direct(services, alice, bob.user_id).view  # published: nothing waits
    bus.up = False
    messages.send_message(services, alice, conv["id"], NewMessage("waits", "text", 3))
    assert _unpublished(services) == 1
    config = alembic_config(store_url)
    command.downgrade(config, "0010")
    try:
        engine = create_engine(store_url)
        try:
            with engine.connect() as conn:
                rows = conn.execute(text("SELECT name, published_at FROM events ORDER BY id")).all()
        finally:
            engine.dispose()
        assert [(name, at is None) for name, at in rows] == [("conversation_created", False), ("new_message", True)]
    finally:
        command.upgrade(config, "head")
    services.db.dispose()  # connections opened before the tables changed
    assert _unpublished(services) == 1
    heard: list[PublishedEvent] = []
    bus.subscribe(heard.append)
    bus.up = True
    assert sweep_outbox(services, older_than_seconds=0) == 1
    assert [e.payload["message"]["content"] for e in heard] == ["waits"]
    assert _unpublished(services) == 0


def test_long_running_instances_gather_their_marks_and_write_them_on_close(store_url: str, key_path: str) -> None:
    """The marks of many units wait to be written together (here an hour, so only `close`
    writes them): the events stay in the outbox's waiting list until then, and are gone after."""
    svc = _services_on_flaky_bus(store_url, key_path, up=True)
    svc.marks = PublicationMarks(svc.db, delay=3600.0)
    try:
        alice, bob = Actor(new_id(), "a"), Actor(new_id(), "b")
        conv = conversations.create_direct(svc, alice, bob.user_id).view
        for n in range(3):
            messages.send_message(svc, alice, conv["id"], NewMessage(f"m{n}", "text", 10 + n))
        assert _unpublished(svc) == 4  # conversation_created and three new_message, published, marks gathered
    finally:
        svc.close()
    again = build_services(make_settings(store_url, key_path))
    try:
        assert _unpublished(again) == 0
    finally:
        again.close()


def test_a_function_marks_each_unit_at_once(store_url: str, key_path: str) -> None:
    svc = _services_on_flaky_bus(store_url, key_path, up=True, component="function")
    try:
        alice, bob = Actor(new_id(), "a"), Actor(new_id(), "b")
        conv = conversations.create_direct(svc, alice, bob.user_id).view
        messages.send_message(svc, alice, conv["id"], NewMessage("now", "text", 20))
        assert _unpublished(svc) == 0
    finally:
        svc.close()


def test_gathered_marks_are_written_within_their_delay(store_url: str, key_path: str) -> None:
    svc = _services_on_flaky_bus(store_url, key_path, up=True, publication_marks_delay_ms=20)
    try:
        alice, bob = Actor(new_id(), "a"), Actor(new_id(), "b")
        conv = conversations.create_direct(svc, alice, bob.user_id).view
        messages.send_message(svc, alice, conv["id"], NewMessage("soon", "text", 30))
        deadline = time.monotonic() + 10  # the thread writes them 20 ms later; a loaded machine may take longer
        while _unpublished(svc) and time.monotonic() < deadline:
            time.sleep(0.02)
        assert _unpublished(svc) == 0
    finally:
        svc.close()


def test_no_mark_is_lost_when_the_marks_close_under_load(store_url: str, key_path: str) -> None:
    """Units keep publishing from several threads while the gathered marks are closed (the
    process stopping): each unit's marks are either gathered before the last flush or written
    by the unit itself, so nothing is left for the sweeper."""
    svc = _services_on_flaky_bus(store_url, key_path, up=True, messages_burst=1000, messages_per_minute=100_000)
    svc.marks = PublicationMarks(svc.db, delay=3600.0)
    alice, bob = Actor(new_id(), "a"), Actor(new_id(), "b")
    conv = conversations.create_direct(svc, alice, bob.user_id).view
    closing = threading.Event()
    errors: list[BaseException] = []

    def send(worker: int) -> None:
        try:
            for n in range(40):
                messages.send_message(svc, alice, conv["id"], NewMessage(f"{worker}-{n}", "text", worker * 1000 + n))
                if n == 10:
                    closing.set()
        except BaseException as error:  # reported below
            errors.append(error)

    threads = [threading.Thread(target=send, args=(w,)) for w in range(4)]
    try:
        for thread in threads:
            thread.start()
        assert closing.wait(30)
        svc.marks.close()  # while the senders go on
        for thread in threads:
            thread.join(60)
        assert not errors, errors
        assert _unpublished(svc) == 0
    finally:
        svc.close()


class _SlowCheck(threading.Event):
    """The marks' `_stopped`: a `gather` that has just found them open is held there until
    `close` has finished (at most `hold` seconds), the widest a race between them can be."""

    def __init__(self, hold: float) -> None:
        super().__init__()
        self.hold = hold
        self.checked = threading.Event()
        self.closed = threading.Event()

    def is_set(self) -> bool:
        found = super().is_set()
        if not found and not self.checked.is_set():
            self.checked.set()
            self.closed.wait(self.hold)
        return found


def test_a_mark_gathered_while_the_marks_close_is_written(services: Services) -> None:
    """A unit gathers its marks at the moment the process closes them: either the gather is
    refused (the unit writes them itself) or they are in the last flush. Never taken and
    dropped (the gather checked, close flushed, then the gather added them)."""
    alice, bob = Actor(new_id(), "a"), Actor(new_id(), "b")
    conv = conversations.create_direct(services, alice, bob.user_id).view
    messages.send_message(services, alice, conv["id"], NewMessage("waiting", "text", 40))  # the bus is down
    with services.db.transaction() as conn:
        positions = [int(p) for p in conn.execute(select(unpublished_events.c.event_id)).scalars()]
    assert len(positions) == 2
    marks = PublicationMarks(services.db, delay=3600.0)
    check = marks._stopped = _SlowCheck(hold=1.0)
    taken: list[bool] = []
    gathering = threading.Thread(target=lambda: taken.append(marks.gather(positions)))
    gathering.start()
    assert check.checked.wait(10)
    marks.close()
    check.closed.set()
    gathering.join(10)
    assert taken == [True]
    assert _unpublished(services) == 0  # written by the last flush
