"""In-process event bus: the embedded default (one machine, no cloud)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from shared.ports.bus import PublishedEvent, Subscriber

log = logging.getLogger(__name__)


class InProcessBus:
    in_process = True  # every subscriber has an event when `publish` returns (ports.bus.hands_over_in_process)

    def __init__(self) -> None:
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def publish(self, events: Sequence[PublishedEvent]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for event in events:
            for subscriber in subscribers:
                try:
                    subscriber(event)
                except Exception:  # one bad consumer must not stop the others
                    log.exception("event subscriber failed on %s", event.name)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        with self._lock:
            self._subscribers.append(subscriber)

        def unsubscribe() -> None:
            with self._lock:
                if subscriber in self._subscribers:
                    self._subscribers.remove(subscriber)

        return unsubscribe

    def ping(self) -> None:
        return None  # in this process: it answers whenever the process does

    def close(self) -> None:
        with self._lock:
            self._subscribers.clear()
