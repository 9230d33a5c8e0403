"""What use cases run against: the adapters chosen by configuration, and the unit of work."""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Protocol

from sqlalchemy import Connection

from shared.app.publication_marks import PublicationMarks
from shared.config import Settings
from shared.domain.models import Event
from shared.ports.bus import EventBus, PublishedEvent, hands_over_in_process
from shared.ports.limiter import RateLimiter
from shared.ports.scheduler import NullScheduler, Scheduler
from shared.ports.siblings import MediaLibrary, Notifier, UserDirectory
from shared.ports.state import StateStore
from shared.storage import outbox
from shared.storage.engine import Database
from shared.telemetry import tracing
from shared.telemetry.metrics import BUS_PUBLISH_FAILURES, BUS_PUBLISH_SECONDS

log = logging.getLogger(__name__)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


@dataclass
class Unit:
    """One transaction: the connection, the time it runs at, and the events it records."""

    conn: Connection
    now: datetime
    events: list[PublishedEvent] = field(default_factory=list)
    _deferred: list[Event] | None = None  # recorded, written by `flush_events` (see `defer_events`)
    marked: bool = False  # events written already marked published (`shared.ports.bus.hands_over_in_process`)

    def record(self, event: Event) -> None:
        if self._deferred is not None:
            self._deferred.append(event)
            return
        self.events.append(outbox.append(self.conn, event, self.now, published=self.marked))

    def defer_events(self) -> None:
        """Write the events recorded from now on together, in two statements, when the unit ends
        (or at `flush_events`), instead of each as it is recorded: for units that record many
        (group commit). Nothing in the transaction may read them back before that."""
        if self._deferred is None:
            self._deferred = []

    def flush_events(self) -> None:
        self.write_events(())()

    def write_events(self, recorded: Sequence[Event]) -> Callable[[], None]:
        """Write the deferred events and then `recorded`, now (in the caller's pipeline, if
        any), whether or not the unit defers; they join `events` (with their positions) when
        the returned function is called (after the pipeline's round trip)."""
        pending = [*(self._deferred or ()), *recorded]
        if self._deferred:
            self._deferred.clear()
        if not pending:
            return lambda: None
        written = outbox.append_many_later(self.conn, pending, self.now, published=self.marked)
        return lambda: self.events.extend(written())

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A part of the transaction that fails alone: on an exception its writes are rolled
        back (SAVEPOINT / ROLLBACK TO) and so are the events it recorded (events deferred
        before it, and written inside it, are deferred again); the rest goes on."""
        mark = len(self.events)
        deferred = list(self._deferred) if self._deferred is not None else None
        try:
            with self.conn.begin_nested():
                yield
        except BaseException:
            del self.events[mark:]
            if self._deferred is not None and deferred is not None:
                self._deferred[:] = deferred
            raise


class Background(Protocol):
    """A worker thread of a long-lived process (e.g. the notification worker)."""

    def start(self) -> None: ...

    def stop(self, timeout: float = 10.0) -> None: ...


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
    media: MediaLibrary | None = None  # media-service; bootstrap sets the configured one (None: no check)
    notifier: Notifier | None = None  # notification-service; bootstrap sets the configured one (None: no pushes)
    # pushes to offline members (shared/app/notifications.py); long-lived entry points start it
    notifications: Background | None = None
    # set once the process was told to stop (SIGTERM): readiness fails, no new socket is taken
    draining: threading.Event = field(default_factory=threading.Event)
    # marks of published events written together (None: each unit writes its own)
    marks: PublicationMarks | None = None

    @contextmanager
    def unit(self) -> Iterator[Unit]:
        """A transaction whose recorded events are published once it has committed. The events
        are marked published on the same connection (no second checkout from the pool), unless
        the bus hands them over in this process: then they are written marked, which spares
        the second write of every event row and a transaction per unit."""
        with self.db.connect() as conn:
            with tracing.span("db.transaction", kind=tracing.CLIENT), conn.begin():
                unit = Unit(conn, self.clock(), marked=hands_over_in_process(self.bus))
                yield unit
                unit.flush_events()
            if unit.events:
                self.publish(unit.events, conn, mark=not unit.marked, gather=True)

    def publish(
        self, events: list[PublishedEvent], conn: Connection | None = None, *, mark: bool = True, gather: bool = False
    ) -> bool:
        """Publish committed events and mark them (in a transaction of its own, on `conn` if
        given; not if `mark` is false; with `gather`, later and with other units' marks where
        `marks` gathers them); False (and left for the sweeper) on failure."""
        started = time.perf_counter()
        try:
            with tracing.span("publish", kind=tracing.PRODUCER, attributes={"whispr.events": len(events)}):
                traceparent = tracing.current_traceparent()  # carried to every relay's delivery
                if traceparent is not None:
                    events = [dataclasses.replace(e, trace=traceparent) for e in events]
                self.bus.publish(events)
        except Exception:  # the sweeper republishes what is left unpublished
            BUS_PUBLISH_FAILURES.inc()
            log.exception("publishing %d events failed; left for the outbox sweeper", len(events))
            return False
        BUS_PUBLISH_SECONDS.observe(time.perf_counter() - started)
        if not mark:
            return True
        positions = [e.position for e in events]
        if gather and self.marks is not None and self.marks.gather(positions):
            return True
        if conn is None:
            with self.db.transaction() as fresh:
                outbox.mark_published(fresh, positions, durable=False)
        else:
            with conn.begin():
                outbox.mark_published(conn, positions, durable=False)
        return True

    def close(self) -> None:
        if self.notifications is not None:
            self.notifications.stop()
        for sibling in (self.users, self.media, self.notifier):  # gRPC adapters hold a channel
            close = getattr(sibling, "close", None)
            if close is not None:
                close()
        self.scheduler.stop()
        if self.marks is not None:
            self.marks.close()
        if self.state is not None:
            self.state.close()
        self.bus.close()
        self.db.dispose()
