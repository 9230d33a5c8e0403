"""The event bus port: committed events go out to every relay instance (and siblings)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol


@dataclass(frozen=True)
class PublishedEvent:
    """An outbox row on its way out. `position` is the outbox id; consumers deduplicate by
    `event_id` (or by conversation and `seq` for message events)."""

    position: int
    event_id: str
    name: str
    topics: tuple[str, ...]
    payload: dict[str, Any]
    conversation_id: str | None
    seq: int | None
    created_at: datetime
    trace: str | None = None  # W3C traceparent of the span that published it (tracing on)


Subscriber = Callable[[PublishedEvent], None]


class EventBus(Protocol):
    def publish(self, events: Sequence[PublishedEvent]) -> None: ...

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Register a subscriber; returns a function that unsubscribes it."""
        ...

    def ping(self) -> None:
        """Raise unless the bus answers now (readiness, `shared.app.health`)."""
        ...

    def close(self) -> None: ...


def hands_over_in_process(bus: EventBus) -> bool:
    """Whether `bus.publish` hands every event to every subscriber there is before it returns,
    in this process (a bus whose class sets `in_process = True`). Such a bus loses a committed
    event only if the process ends, its subscribers with it, so nothing is left for the outbox
    sweeper: its events are stored marked published (docs/performance.md, "Issue 16")."""
    return bool(getattr(bus, "in_process", False))
