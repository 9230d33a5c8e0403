"""What use cases run against: the adapters chosen by configuration, and the unit of work."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import Connection

from shared.config import Settings
from shared.domain.models import Event
from shared.ports.bus import EventBus, PublishedEvent
from shared.ports.limiter import RateLimiter
from shared.ports.scheduler import NullScheduler, Scheduler
from shared.ports.siblings import UserDirectory
from shared.ports.state import StateStore
from shared.storage import outbox
from shared.storage.engine import Database

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Unit:
    """One transaction: the connection, the time it runs at, and the events it records."""

    conn: Connection
    now: datetime
    events: list[PublishedEvent] = field(default_factory=list)
    _txid: int | None = None

    def record(self, event: Event) -> None:
        if self._txid is None:
            self._txid = outbox.current_txid(self.conn)
        self.events.append(outbox.append(self.conn, event, self.now, self._txid))

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the transaction that fails alone: on an exception its writes are rolled
        back (SAVEPOINT / ROLLBACK TO) and so are the events it recorded; the rest goes on."""
        mark = len(self.events)
        try:
            with self.conn.begin_nested():
                yield
        except BaseException:
            del self.events[mark:]
            raise


@dataclass
class Services:
    settings: Settings
    db: Database
    bus: EventBus
    users: UserDirectory
    limiter: RateLimiter
    clock: Callable[[], datetime] = utcnow
    scheduler: Scheduler = field(default_factory=NullScheduler)  # bootstrap sets the configured one
    state: StateStore | None = None  # presence and device sessions; bootstrap sets the configured one

    @contextmanager
    def unit(self) -> Iterator[Unit]:
        """A transaction whose recorded events are published once it has committed."""
        with self.db.transaction() as conn:
            unit = Unit(conn, self.clock())
            yield unit
        if unit.events:
            self.publish(unit.events)

    def publish(self, events: list[PublishedEvent]) -> bool:
        """Publish committed events and mark them; False (and left for the sweeper) on failure."""
        try:
            self.bus.publish(events)
        except Exception:  # the sweeper republishes what is left unpublished
            log.exception("publishing %d events failed; left for the outbox sweeper", len(events))
            return False
        with self.db.transaction() as conn:
            outbox.mark_published(conn, [e.position for e in events], self.clock())
        return True

    def close(self) -> None:
        self.scheduler.stop()
        if self.state is not None:
            self.state.close()
        self.bus.close()
        self.db.dispose()
