"""The embedded multi-process bus (`dev --workers N`): a real broker on a Unix socket and real
bus clients, as the workers use them."""

from __future__ import annotations

import threading
from datetime import datetime, timezone
from pathlib import Path

import pytest

from shared.adapters.local_bus import BusBroker, LocalBus
from shared.ports.bus import PublishedEvent
from tests.support import eventually


def event(i: int, publisher: str) -> PublishedEvent:
    return PublishedEvent(
        position=i,
        event_id=f"{publisher}-{i}",
        name="new_message",
        topics=("conversation:c", f"user:{publisher}"),
        payload={"message": {"seq": i, "content": "é" * (i % 7), "nested": {"list": [1, None, True]}}},
        conversation_id="c",
        seq=i,
        created_at=datetime(2026, 12, 7, 12, 0, i % 60, 1234, tzinfo=timezone.utc),
        trace=f"00-{i:032x}-{i:016x}-01" if i % 2 else None,
    )


class Heard:
    def __init__(self, bus: LocalBus):
        self.events: list[PublishedEvent] = []
        self.lock = threading.Lock()
        bus.subscribe(self.take)

    def take(self, published: PublishedEvent) -> None:
        with self.lock:
            self.events.append(published)

    def ids(self) -> list[str]:
        with self.lock:
            return [e.event_id for e in self.events]


def publish_pairs(bus: LocalBus, publisher: str) -> None:
    for i in range(0, 400, 2):
        bus.publish([event(i, publisher), event(i + 1, publisher)])


def test_every_worker_hears_every_event_once_in_each_publishers_order(tmp_path: Path) -> None:
    broker = BusBroker(str(tmp_path / "bus.sock"))
    buses = [LocalBus(broker.path) for _ in range(3)]
    try:
        eventually(lambda: broker.workers, lambda n: n == 3, what="three workers connected")
        heard = [Heard(bus) for bus in buses]
        publishers = [
            threading.Thread(target=publish_pairs, args=(bus, name))
            for bus, name in zip(buses[:2], ("a", "b"), strict=True)
        ]
        for thread in publishers:
            thread.start()
        for thread in publishers:
            thread.join(30)
        for listener in heard:
            eventually(listener.ids, lambda ids: len(ids) >= 800, what="800 events")
        for listener in heard:
            ids = listener.ids()
            assert len(ids) == 800 and len(set(ids)) == 800  # its own (handed out locally) and the others', once
            for name in ("a", "b"):
                assert [i for i in ids if i.startswith(name)] == [f"{name}-{i}" for i in range(400)]
        assert heard[2].events[heard[2].ids().index("a-3")] == event(3, "a")  # decoded as published
    finally:
        for bus in buses:
            bus.close()
        broker.close()


def test_a_worker_cut_off_from_the_broker_is_not_ready_and_cannot_publish(tmp_path: Path) -> None:
    broker = BusBroker(str(tmp_path / "bus.sock"))
    bus = LocalBus(broker.path)
    try:
        eventually(lambda: broker.workers, lambda n: n == 1, what="the worker connected")
        bus.ping()
        broker.close()
        eventually(lambda: _pings(bus), lambda ok: not ok, what="the bus noticed the broker went away")
        with pytest.raises(OSError):  # the caller leaves the events in the outbox
            for i in range(100):
                bus.publish([event(i, "a")])
    finally:
        bus.close()


def _pings(bus: LocalBus) -> bool:
    try:
        bus.ping()
    except ConnectionError:
        return False
    return True
